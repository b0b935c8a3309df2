"""Routing, privacy, signatures, retry policy and the routing file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
from pathlib import Path

import pytest

from cxstream.core.notification import (
    Channel,
    NotifyConfig,
    Route,
    backoff_s,
    email_message,
    in_cooldown,
    parse_retry_after,
    redact,
    route,
    sign,
    slack_message,
    verdict,
    webhook_headers,
)
from cxstream.notify.routing import NotifyConfigError, load, parse

ALERT = {"alert_id": "a1", "kind": "detractor", "customer_id": "c1", "score": 2,
         "previous_category": "promoter", "occurred_at": "2026-10-31T10:00:00Z",
         "segment": {"plan": "pro", "region": "br"}, "touchpoint": "support", "channel": "chat",
         "comment": "terrible", "owner": {"name": "Ana", "email": "ana@example.com", "slack": "@ana"},
         "recent_interactions": [{"event_id": "i1", "kind": "ticket_opened",
                                  "occurred_at": "2026-10-30T10:00:00Z", "outcome": "open"}]}
CH = {n: Channel(n, "webhook", url="https://x") for n in ("a", "b", "c", "d")}


def cfg(**kw: object) -> NotifyConfig:
    return NotifyConfig(channels=CH, **kw)  # type: ignore[arg-type]


def test_route_by_owner_then_segment_then_default() -> None:
    c = cfg(owner_routes=(Route("a", owner="ana@example.com"), Route("b", owner="@ana")),
            segment_routes=(Route("c", segment="region:br"),), default="d")
    assert route(ALERT, c) == ["a", "b"]
    assert route({**ALERT, "owner": None}, c) == ["c"]
    assert route({**ALERT, "owner": None, "segment": {}, "touchpoint": None}, c) == ["d"]
    assert route({**ALERT, "owner": None, "segment": {}}, cfg(segment_routes=(Route("c", segment="touchpoint:support"),))) == ["c"]
    assert route({**ALERT, "owner": None, "segment": {}, "touchpoint": None}, cfg()) == []


def test_privacy_switches() -> None:
    out = redact(ALERT, Channel("x", "webhook", include_comment=False, include_email=False))
    assert out["comment"] is None and out["owner"]["email"] is None and out["owner"]["name"] == "Ana"
    assert ALERT["comment"] == "terrible"  # the input is untouched


def test_signature_is_standard_webhooks() -> None:
    body = b'{"a":1}'
    headers = webhook_headers("a1", "s3cret", 1_700_000_000, body)
    expected = base64.b64encode(hmac.new(b"s3cret", b"a1.1700000000." + body, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}" == sign("s3cret", "a1", 1_700_000_000, body)
    assert headers["Idempotency-Key"] == headers["webhook-id"] == "a1"
    assert "webhook-signature" not in webhook_headers("a1", None, 1, body)


@pytest.mark.parametrize("status,expected", [(200, "delivered"), (204, "delivered"), (429, "retry"),
                                             (500, "retry"), (503, "retry"), (400, "fail"), (404, "fail"),
                                             (301, "fail")])
def test_verdict(status: int, expected: str) -> None:
    assert verdict(status) == expected


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    c = cfg(backoff_base_s=1.0, backoff_cap_s=8.0)
    rng = random.Random(1)
    for attempt in range(1, 8):
        assert 0 <= backoff_s(attempt, c, rng) <= min(8.0, 2 ** (attempt - 1))
    assert backoff_s(1, c, rng, retry_after_s=3) == 3 and backoff_s(1, c, rng, retry_after_s=60) == 8
    assert parse_retry_after("2") == 2 and parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None


def test_cooldown() -> None:
    assert not in_cooldown(None, 100, 50)
    assert in_cooldown(100, 120, 50) and not in_cooldown(100, 150, 50) and not in_cooldown(100, 120, 0)


def test_messages_carry_the_context() -> None:
    blocks = slack_message(ALERT)["blocks"]
    text = str(blocks)
    assert "c1" in text and "terrible" in text and "ticket_opened" in text and "region=br" in text
    subject, body = email_message(ALERT)
    assert "c1" in subject and "terrible" in body and "ticket_opened" in body


def test_routing_file(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("abc\n")
    f = tmp_path / "n.toml"
    f.write_text('''
cooldown = "30m"
default = "hook"
kinds = ["detractor", "recovered"]
[channels.hook]
type = "webhook"
url = "https://hooks.example.com/x"
secret_file = "secret"
[channels.mail]
type = "email"
host = "smtp.example.com"
from = "cx@example.com"
starttls = true
[[routes]]
owner = "ana@example.com"
channel = "mail"
''')
    c = load(f)
    assert c.channels["hook"].secret == "abc" and c.cooldown_ms == 30 * 60_000
    assert c.owner_routes == (Route("mail", owner="ana@example.com"),) and c.default == "hook"
    assert c.kinds == {"detractor", "recovered"} and c.channels["mail"].starttls


@pytest.mark.parametrize("doc,message", [
    ({"channels": {"x": {"type": "pager"}}}, "type must be"),
    ({"channels": {"x": {"type": "webhook"}}}, "url is required"),
    ({"channels": {"x": {"type": "webhook", "url": "https://a", "sekret": 1}}}, "unknown key"),
    ({"routes": [{"owner": "a", "channel": "nope"}]}, "not a defined channel"),
    ({"default": "nope"}, "not defined"),
])
def test_routing_file_errors_name_the_field(doc: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(doc)


def test_unreadable_routing_file(tmp_path: Path) -> None:
    with pytest.raises(NotifyConfigError, match="cannot read"):
        load(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("[channels\n")
    with pytest.raises(NotifyConfigError, match="not valid TOML"):
        load(tmp_path / "bad.toml")
