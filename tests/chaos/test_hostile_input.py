"""Chaos 5: hostile input. Unit level: every decoder, and the whole per-message plan, turn any
bytes (random, mutated documents, NaN/Infinity, huge numbers, 10 MB values, wrong types,
tombstones) into a rejection with a code and a reason, never an exception. Against the real
worker: a stream of 100 % garbage is dead-lettered message by message with its reason, the
valid traffic behind it is all processed exactly, and the worker stays ready throughout.
(No timing is asserted: that belongs in the benchmarks.)

`tests/unit/core/test_decode.py` already covers one case per rule, arbitrary bytes and JSON,
deep nesting and huge numbers at the decoder; these add what it does not: the full plan,
mutations of valid documents, every field position, and 10 MB values for every decoder.
Poison values (`tests/unit/core/test_decode_hostile.py` has their oracles): timestamps whose
offset takes them out of years 1..9999 or before CXSTREAM_MIN_EVENT_TIME, repeated keys,
and line breaks or control characters in ids, labels, names and addresses, in the plan and
in a stream to the real worker.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from pathlib import Path
from typing import Any, Callable

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from cxstream.core.deadletter import dead_letter
from cxstream.core.decode import decode_interaction, decode_profile, decode_survey
from cxstream.core.errors import ErrorCode, Rejection
from cxstream.core.model import CustomerProfile, Interaction, SurveyResponse
from cxstream.core.step import StepConfig, plan
from cxstream.core.timefmt import format_rfc3339
from tests.integration.harness import (
    Expected,
    Sent,
    Worker,
    assert_alerts_match_oracle,
    assert_dead_letters_match,
    assert_scores_match_oracle,
    mixed_stream,
    wait_inputs_drained,
)

from .tools import ReadyWatch

NOW = 1_793_448_000_000  # 2026-10-31T12:00:00Z
AT = format_rfc3339(NOW - 3_600_000)
CFG = StepConfig(horizon_ms=30 * 86_400_000 + 3_600_000)
DEAD_LETTER = Draft202012Validator(json.loads(
    (Path(__file__).resolve().parents[2] / "schemas" / "dead-letter.schema.json").read_text()))

Decoder = Callable[[bytes, "bytes | None", int], Any]
VALID: dict[str, dict[str, Any]] = {
    "surveys": {"event_id": "e1", "customer_id": "c1", "survey": "nps", "score": 9, "occurred_at": AT,
                "segment": {"plan": "pro"}, "touchpoint": "web", "channel": "chat", "comment": "ok",
                "interaction_id": "i0"},
    "interactions": {"event_id": "i1", "customer_id": "c1", "occurred_at": AT, "kind": "call",
                     "touchpoint": "web", "channel": "phone", "outcome": "open", "segment": {"plan": "pro"}},
    "customers": {"customer_id": "c1", "segment": {"plan": "pro"}, "updated_at": AT,
                  "owner": {"name": "Ana", "email": "ana@example.com", "slack": "@ana"}},
}
DECODERS: dict[str, Decoder] = {"surveys": decode_survey, "interactions": decode_interaction,
                                "customers": decode_profile}
EVENTS = (SurveyResponse, Interaction, CustomerProfile)


def assert_rejected_or_event(result: Any) -> None:
    if isinstance(result, Rejection):
        assert isinstance(result.code, ErrorCode) and result.code != ErrorCode.PROCESSING_ERROR, result
        assert isinstance(result.reason, str) and 0 < len(result.reason) < 300, result
    else:
        assert isinstance(result, EVENTS), result


def assert_dead_lettered(kind: str, key: bytes | None, value: bytes | None, state: dict[str, Any]) -> ErrorCode:
    """The full plan for one message: a dead letter with a code and a reason, no state write,
    no alert; and the dead-letter document is valid and carries the original bytes."""
    p = plan(kind, state, CFG, partition=1, offset=7, key=key, value=value, now_ms=NOW)  # type: ignore[arg-type]
    assert p.outcome == "deadlettered" and p.rejection is not None, p
    assert p.rejection.code != ErrorCode.PROCESSING_ERROR and p.rejection.reason, p.rejection
    assert not p.before_alert and not p.after_alert and p.alert is None and p.stream_time is None
    doc = dead_letter(p.rejection, topic=f"cx.{kind}", partition=1, offset=7, key=key, payload=value,
                      now_ms=NOW)
    assert not list(DEAD_LETTER.iter_errors(doc)), doc
    kept = base64.b64decode(doc["payload"])
    if doc.get("payload_truncated"):  # a huge value keeps its beginning, size and digest
        assert (value or b"").startswith(kept) and doc["payload_bytes"] == len(value or b"")
        assert doc["payload_sha256"] == hashlib.sha256(value or b"").hexdigest()
    else:
        assert kept == (value or b"")
    assert orjson.loads(orjson.dumps(doc)) == doc
    return p.rejection.code


# -- the whole plan, on bytes that are never valid -----------------------------------------------
garbage = st.one_of(
    st.binary(max_size=300).map(lambda b: b"\xff" + b),  # invalid UTF-8 somewhere: not JSON
    st.sampled_from([b"", b"null", b"[]", b"{}", b"NaN", b"-Infinity", b'{"score": NaN}', b"1e999",
                     b'"' + b"\\ud800" * 10 + b'"', b"[" * 5000, b'{"a":' * 3000, b"\x00" * 100]),
    st.none(),  # a tombstone (null value), e.g. a compaction delete on the customers topic
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(DECODERS)), garbage, st.none() | st.binary(max_size=20),
       st.sampled_from(["empty", "known"]))
def test_the_plan_dead_letters_garbage(kind: str, value: bytes | None, key: bytes | None, state: str) -> None:
    known = {} if state == "empty" else _known_state()
    assert_dead_lettered(kind, key, value, known)


def _known_state() -> dict[str, Any]:
    """A state table that already knows customer c1 and partition 1 (so garbage meets real state)."""
    table: dict[str, Any] = {}
    raw = orjson.dumps(VALID["surveys"])
    p = plan("surveys", table, CFG, partition=1, offset=3, key=b"c1", value=raw, now_ms=NOW)
    for k, v in [*p.before_alert, *p.after_alert]:
        table[k] = v
    return table


# -- mutations of valid documents ----------------------------------------------------------------
@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(sorted(VALID)))
    raw = bytearray(orjson.dumps(VALID[kind]))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, max(0, len(raw) - 1)))
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "repeat", "swap"]))
        if op == "flip" and raw:
            raw[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            raw[at:at] = draw(st.binary(min_size=1, max_size=8) | st.sampled_from(
                [b"NaN", b"Infinity", b"1e999", b"-", b'"', b"\\", b"{", b"]", b"\xc3", b"\xed\xa0\x80"]))
        elif op == "delete" and raw:
            del raw[at:at + draw(st.integers(1, 8))]
        elif op == "truncate":
            del raw[at:]
        elif op == "repeat":
            raw[at:at] = raw[at:at + draw(st.integers(1, 30))]
        elif op == "swap" and len(raw) > 1:
            j = draw(st.integers(0, len(raw) - 1))
            raw[at], raw[j] = raw[j], raw[at]
    return kind, bytes(raw)


@settings(max_examples=1500, deadline=None)
@given(mutated(), st.sampled_from([b"c1", b"c2", None]))
def test_mutated_documents_never_raise(case: tuple[str, bytes], key: bytes | None) -> None:
    kind, raw = case
    result = DECODERS[kind](raw, key, NOW)
    assert_rejected_or_event(result)
    if isinstance(result, Rejection):
        assert_dead_lettered(kind, key, raw, {})


# -- every field position: NaN/Infinity, huge numbers, every wrong JSON type ---------------------
NON_JSON = [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"nan", b"undefined", b"0x10",
            b"+1", b".5", b"01", b"1.", b"'x'", b'"\\ud800"']
HUGE = [b"1" + b"0" * 400, b"-" + b"9" * 400, b"1e308", b"-1e308", b"4.9e-324", b"18446744073709551616",
        b"1" + b"0" * 40 + b".0"]
WRONG_TYPES = {"integer": 5, "fraction": 2.5, "boolean": True, "array": ["x"], "object": {"x": "y"},
               "string": "x"}
FIELDS = [(kind, field) for kind, doc in VALID.items() for field in doc] + \
    [("customers", "owner.name"), ("customers", "owner.email"), ("surveys", "segment.plan")]


def _with(kind: str, field: str, token: bytes) -> bytes:
    doc = json.loads(json.dumps(VALID[kind]))
    *path, last = field.split(".")
    target = doc
    for part in path:
        target = target[part]
    target[last] = "@@PLACEHOLDER@@"
    return orjson.dumps(doc).replace(b'"@@PLACEHOLDER@@"', token)


@pytest.mark.parametrize("kind,field", FIELDS, ids=[f"{k}.{f}" for k, f in FIELDS])
def test_every_field_rejects_non_json_numbers_and_huge_ones(kind: str, field: str) -> None:
    for token in NON_JSON:
        code = assert_dead_lettered(kind, b"c1", _with(kind, field, token), {})
        assert code == ErrorCode.NOT_JSON, (field, token, code)
    for token in HUGE:
        result = DECODERS[kind](_with(kind, field, token), b"c1", NOW)
        assert_rejected_or_event(result)
        if field != "score" or b"e-" in token:
            # a number where a string or object belongs is never accepted
            assert isinstance(result, Rejection), (field, token, result)


@pytest.mark.parametrize("kind,field", FIELDS, ids=[f"{k}.{f}" for k, f in FIELDS])
def test_every_field_rejects_every_wrong_type(kind: str, field: str) -> None:
    original = VALID[kind]
    for part in field.split("."):
        original = original[part]
    for name, value in WRONG_TYPES.items():
        if type(value) is type(original) or (name == "integer" and field == "score"):
            continue
        raw = _with(kind, field, orjson.dumps(value))
        code = assert_dead_lettered(kind, b"c1", raw, {})
        assert code == ErrorCode.WRONG_TYPE, (field, name, code)


# -- 10 MB values --------------------------------------------------------------------------------
TEN_MB = 10 * 1024 * 1024
BIG = {
    "valid document with a 10 MB comment": lambda kind: orjson.dumps({**VALID[kind], "comment": "x" * TEN_MB}),
    "10 MB of opening brackets": lambda kind: b"[" * TEN_MB,
    "10 MB of digits": lambda kind: b"9" * TEN_MB,
    "10 MB of invalid UTF-8": lambda kind: b"\xff" * TEN_MB,
    "10 MB string": lambda kind: b'"' + b"a" * TEN_MB + b'"',
}


@pytest.mark.parametrize("kind", sorted(VALID))
@pytest.mark.parametrize("shape", sorted(BIG))
def test_ten_megabyte_values_are_too_large(kind: str, shape: str) -> None:
    raw = BIG[shape](kind)
    assert len(raw) >= TEN_MB
    assert assert_dead_lettered(kind, b"c1", raw, {}) == ErrorCode.TOO_LARGE


# -- poison values: valid JSON and RFC 3339, but unusable downstream ----------------------------
TIME_FIELD = {"surveys": "occurred_at", "interactions": "occurred_at", "customers": "updated_at"}
def _set(kind: str, **fields: Any) -> bytes:
    """The valid document of `kind` with `fields` replaced."""
    return orjson.dumps({**VALID[kind], **fields})


POISON: list[tuple[str, Callable[[str], bytes], ErrorCode]] = [
    ("year 0 after the offset", lambda k: _set(k, **{TIME_FIELD[k]: "0001-01-01T00:30:00+01:00"}),
     ErrorCode.TIMESTAMP_OUT_OF_RANGE),
    ("before 2000", lambda k: _set(k, **{TIME_FIELD[k]: "1970-01-01T00:00:00Z"}),
     ErrorCode.TIMESTAMP_OUT_OF_RANGE),
    ("year 10000 after the offset",
     lambda k: _set(k, **{TIME_FIELD[k]: "9999-12-31T23:30:00-01:00"}), ErrorCode.FUTURE_TIMESTAMP),
    ("customer_id twice", lambda k: orjson.dumps(VALID[k])[:-1] + b',"customer_id":"c1"}',
     ErrorCode.DUPLICATE_KEY),
    ("a nested key twice, escaped",
     lambda k: orjson.dumps(VALID[k])[:-1] + b',"x":{"a":1,"\\u0061":2}}', ErrorCode.DUPLICATE_KEY),
    ("CRLF in the customer id", lambda k: _set(k, customer_id="c1\r\nBcc: x"),
     ErrorCode.INVALID_VALUE),
    ("U+2028 in a segment value", lambda k: _set(k, segment={"plan": "p\u2028"}),
     ErrorCode.INVALID_VALUE),
    ("NEL in a label or the owner's name", lambda k: _set(k, owner={"name": "Ana\x85Bcc"})
     if k == "customers" else _set(k, channel="x\x85"), ErrorCode.INVALID_VALUE),
]


@pytest.mark.parametrize("kind", sorted(VALID))
@pytest.mark.parametrize("name,value,code", POISON, ids=[p[0] for p in POISON])
def test_the_plan_dead_letters_poison_values(kind: str, name: str, value: Callable[[str], bytes],
                                             code: ErrorCode) -> None:
    raw = value(kind)
    key = b"c1\r\nBcc: x" if b"Bcc: x" in raw else b"c1"
    for state in ({}, _known_state()):
        assert assert_dead_lettered(kind, key, raw, state) == code, name


def test_comments_keep_their_line_breaks() -> None:
    raw = orjson.dumps({**VALID["surveys"], "comment": "first line\r\nsecond\tline\n"})
    p = plan("surveys", {}, CFG, partition=1, offset=7, key=b"c1", value=raw, now_ms=NOW)
    assert p.outcome == "accepted"
    p = plan("surveys", {}, CFG, partition=1, offset=7, key=b"c1", now_ms=NOW,
             value=orjson.dumps({**VALID["surveys"], "comment": "bell\x07"}))
    assert p.rejection is not None and p.rejection.code == ErrorCode.INVALID_VALUE


# -- against the real worker ---------------------------------------------------------------------
def garbage_stream(seed: int, n: int, customers: list[str]) -> list[Sent]:
    """n hostile messages over the three input topics, each with the code it must get."""
    rng = random.Random(seed)
    out: list[Sent] = []
    for i in range(n):
        topic = rng.choice(["surveys", "interactions", "customers"])
        cid = rng.choice(customers)
        key = cid.encode()
        doc = dict(VALID[topic], customer_id=cid)
        shape = rng.randrange(13)
        if shape == 0:
            value, code = b"\xff" + bytes(rng.randrange(256) for _ in range(rng.randrange(200))), "not_json"
        elif shape == 1:
            value, code = orjson.dumps(doc)[:-1] + b',"n":NaN}', "not_json"
        elif shape == 2:
            value, code = b"[" * 60_000, "not_json"  # deep nesting, just under the size limit
        elif shape == 3:
            value, code = orjson.dumps({**doc, "pad": "x" * rng.choice([70_000, 900_000])}), "too_large"
        elif shape == 4:
            value, code = orjson.dumps([doc]), "not_object"
        elif shape == 5:
            value, code = orjson.dumps({k: v for k, v in doc.items() if k != "customer_id"}), "missing_field"
        elif shape == 6:
            value, code = orjson.dumps(doc).replace(b'"customer_id":"' + key + b'"', b'"customer_id":' + b"9" * 40), "wrong_type"
        elif shape == 7:
            key, value, code = f"x{i}".encode(), orjson.dumps(doc), "key_mismatch"
        elif shape == 8:
            value, code = orjson.dumps(doc).replace(b'"c', b'"\\udc00c', 1), "not_json"  # lone surrogate
        elif shape == 9:  # the key the document already has, again (orjson would keep the last)
            value = orjson.dumps(doc)[:-1] + b',"customer_id":"' + key + b'"}'
            code = "duplicate_key"
        elif shape == 10:
            value = orjson.dumps({**doc, TIME_FIELD[topic]: rng.choice(
                ["0001-01-01T00:30:00+01:00", "1999-12-31T23:59:59Z", "1970-01-01T00:00:00Z"])})
            code = "timestamp_out_of_range"
        elif shape == 11:
            value, code = orjson.dumps({**doc, TIME_FIELD[topic]: "9999-12-31T23:30:00-01:00"}), \
                "future_timestamp"
        else:  # a line break or control character where a header, a log line or the CLI shows it
            field = "owner" if topic == "customers" else \
                rng.choice(["event_id", "channel", "segment"])
            bad = rng.choice(["\r\nBcc: evil@example.com", "\u2028", "\x85", "\x1b[2J", "\x00"])
            value = orjson.dumps({**doc, field: {"name": "Ana" + bad} if field == "owner" else
                                  {"plan": "pro" + bad} if field == "segment" else "x" + bad})
            code = "invalid_value"
        out.append(Sent(topic, key, value, code))
    return out


async def test_garbage_does_not_hold_up_the_valid_traffic_behind_it(worker_factory: Any) -> None:
    w: Worker = worker_factory()
    t = w.prefix
    w.start()
    await w.wait_ready()
    watch = ReadyWatch(w).start()
    try:
        profiles, surveys = mixed_stream(seed=505, responses=800, customers=100, bad_share=0.0,
                                         late_share=0.0, profile_updates=0)
        junk = garbage_stream(505, 3000, [f"cust-{i:04d}" for i in range(100)])
        expected = Expected()
        # All the garbage first, then the valid traffic behind it on the same partitions.
        await expected.produce(w.bootstrap, t, junk)
        valid = profiles + surveys
        await expected.produce(w.bootstrap, t, valid)
        await wait_inputs_drained(w)
    finally:
        await watch.stop()
    expected.finish(t)
    assert watch.seen and set(watch.statuses()) == {200}, \
        f"the worker was not ready throughout: {[s for _, s in watch.seen if s != 200][:10]}"
    assert await assert_scores_match_oracle(w, expected.events) > 50
    await assert_alerts_match_oracle(w.bootstrap, t, expected.alerts)
    # Every garbage message dead-lettered exactly once (no crash here: no repeats).
    await assert_dead_letters_match(w.bootstrap, t, expected.dead, max_repeats_each=0)
    assert w.proc is not None and w.proc.poll() is None
