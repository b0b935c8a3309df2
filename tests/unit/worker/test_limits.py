"""Every record the worker writes fits its topic (`cxstream.worker.limits`,
`cxstream.kafka.limits`): dead letters cut their copy of the payload, alerts leave out their
oldest context, and the limits are read from the broker's answer."""

from __future__ import annotations

import base64
import hashlib
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxstream.core.errors import ErrorCode, Rejection
from cxstream.kafka.limits import parse_limits
from cxstream.worker.limits import Limits, fitted_alert, fitted_dead_letter, record_size

REJECTION = Rejection(ErrorCode.NOT_JSON, "not JSON")


def message(payload: bytes, key: bytes | None = b"c-1") -> Any:
    return SimpleNamespace(topic="cx.surveys", partition=1, offset=7, key=key, value=payload)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 700_000), st.integers(4_000, 1_100_000))
def test_a_dead_letter_always_fits_its_topic(size: int, limit: int) -> None:
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    key, value = fitted_dead_letter(REJECTION, message(payload), 0, limit)
    assert record_size(key, value) <= limit
    doc = orjson.loads(value)
    kept = base64.b64decode(doc["payload"])
    assert payload.startswith(kept)
    if kept != payload:
        assert doc["payload_truncated"] is True and doc["payload_bytes"] == len(payload)
        assert doc["payload_sha256"] == hashlib.sha256(payload).hexdigest()
        # Cut no more than needed: a few hundred bytes of slack at most.
        assert limit - record_size(key, value) < 2_000 or len(kept) == 512 * 1024
    else:
        assert "payload_truncated" not in doc


def test_counted_dead_letters_say_so() -> None:
    for code, counted in ((ErrorCode.SEGMENT_VALUE_CAPPED, True),
                          (ErrorCode.TOO_MANY_DIMENSIONS, True),
                          (ErrorCode.ENTRY_TOO_LARGE, False)):
        _, value = fitted_dead_letter(Rejection(code, "why"), message(b"{}"), 0, 10**6)
        assert orjson.loads(value).get("counted", False) is counted


def alert(interactions: int) -> dict[str, Any]:
    return {"alert_id": "a-1", "customer_id": "c-1", "comment": "c" * 3_000,
            "recent_interactions": [{"event_id": f"i-{i}", "kind": "call" * 50}
                                    for i in range(interactions)]}


def test_an_alert_that_fits_is_sent_as_it_is() -> None:
    a = alert(10)
    sent, value = fitted_alert(a, [("ce_id", b"a-1")], 10**6)
    assert sent is a and value == orjson.dumps(a)


def test_an_alert_too_large_leaves_out_its_oldest_context_first(
        caplog: pytest.LogCaptureFixture) -> None:
    a = alert(40)
    headers = [("ce_id", b"a-1")]
    limit = record_size(b"c-1", orjson.dumps(alert(25)), headers)
    sent, value = fitted_alert(a, headers, limit)
    assert record_size(b"c-1", value, headers) <= limit
    assert sent["recent_interactions"] == a["recent_interactions"][:25]
    assert sent["comment"] == a["comment"] and len(a["recent_interactions"]) == 40
    assert "c-1" not in caplog.text  # no customer data in the log
    small = record_size(b"c-1", orjson.dumps({**alert(0), "comment": None}), headers)
    sent, value = fitted_alert(a, headers, small)
    assert sent["recent_interactions"] == [] and sent["comment"] is None
    with pytest.raises(ValueError, match="raise it"):
        fitted_alert(a, headers, small - 1)


def test_limits_are_read_from_the_describe_configs_answer() -> None:
    response = SimpleNamespace(resources=[
        (0, None, 2, "cx.changelog", [("max.message.bytes", "2000000", False, 5, False, [])]),
        (0, None, 2, "cx.alerts", [("retention.ms", "1", False, 5, False, []),
                                   ("max.message.bytes", "1048588", False, 5, False, [])]),
        (3, "unknown topic", 2, "cx.gone", []),
        (0, None, 2, "cx.odd", [("max.message.bytes", "lots", False, 5, False, [])]),
    ])
    assert parse_limits([response]) == {"cx.changelog": 2_000_000, "cx.alerts": 1_048_588}
    limits = Limits(parse_limits([response]))
    assert limits.of("cx.changelog") == 2_000_000 and limits.of("cx.gone") == 1_048_588
