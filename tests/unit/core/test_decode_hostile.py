"""Poison values at the decoders, against oracles: repeated keys (exact, against Python's json
with object_pairs_hook), control characters and line separators (against the Unicode
categories and str.splitlines), and hostile documents for every decoder, whose accepted
records must go through everything downstream (the plan, the alert, its e-mail and Slack
renderings, CloudEvents headers, the HTTP API's timestamps) without raising."""

from __future__ import annotations

import json
import unicodedata
from email.message import EmailMessage
from typing import Any, Callable

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxstream.config.settings import Settings
from cxstream.core.alert import build_alert, cloudevent_headers
from cxstream.core.decode import (
    DEFAULT_MIN_EVENT_MS,
    MAX_FUTURE_SKEW_MS,
    decode_interaction,
    decode_profile,
    decode_survey,
)
from cxstream.core.dupkeys import kept_strings, repeated_key, repeats_a_key
from cxstream.core.errors import ErrorCode as E
from cxstream.core.errors import Rejection
from cxstream.core.journey import CustomerState, Turn
from cxstream.core.model import CustomerProfile, Interaction, SurveyResponse
from cxstream.core.notification import email_message, slack_message
from cxstream.core.step import StepConfig, plan
from cxstream.core.timefmt import MAX_MS, MIN_MS, format_rfc3339, parse_rfc3339
from cxstream.core.windows import floor_minute, parse_windows

NOW = 1_793_448_000_000  # 2026-10-31T12:00:00Z
AT = "2026-10-31T11:00:00Z"
Decoder = Callable[..., Any]
DECODERS: dict[str, Decoder] = {"surveys": decode_survey, "interactions": decode_interaction,
                                "customers": decode_profile}
TIME_FIELD = {"surveys": "occurred_at", "interactions": "occurred_at", "customers": "updated_at"}


# -- repeated keys: exact against the oracle ------------------------------------------------------
def oracle_repeats(text: bytes) -> bool | None:
    """Python's json, told every object's members in order: is a key repeated anywhere?
    (None: nested past its recursion limit, it cannot tell.)"""
    found = []

    def pairs(members: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in members]
        if len(set(keys)) != len(keys):
            found.append(True)
        return dict(members)

    try:
        json.loads(text, object_pairs_hook=pairs)
    except RecursionError:
        return None
    return bool(found)


def brute_kept(value: Any) -> int:
    """Keys of every object plus string values, recursively (kept_strings' definition)."""
    if isinstance(value, dict):
        return len(value) + sum(brute_kept(v) for v in value.values())
    if isinstance(value, list):
        return sum(brute_kept(v) for v in value)
    return 1 if isinstance(value, str) else 0


# Keys and strings that make counting hard: quotes, backslashes, colons, commas, a string
# that spells a key with its quotes, keys equal to values, non-ASCII.
TRICKY = ["a", "b", "A", "é", "😀", '"', "\\", ":", ",", '","', '"a":', "a\\", '\\"', "\\\\",
          "score", "event_id", "", " ", "/", "\u2028", "\x00", "\n"]
_SHORT = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n",
          "\r": "\\r", "\t": "\\t"}


@st.composite
def spelled(draw: st.DrawFn, text: str) -> str:
    """`text` as a JSON string token, each character written plainly or escaped at random."""
    out = []
    for ch in text:
        must = ch in '"\\' or ord(ch) < 0x20
        how = draw(st.sampled_from(["plain", "u", "short"])) if not must else \
            draw(st.sampled_from(["u", "short"]))
        if how == "short" and ch in _SHORT:
            out.append(_SHORT[ch])
        elif how == "plain" and not must:
            out.append(ch)
        elif ord(ch) > 0xFFFF:  # a surrogate pair
            hi, lo = divmod(ord(ch) - 0x10000, 0x400)
            out.append(f"\\u{0xD800 + hi:04x}\\u{0xDC00 + lo:04X}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    return '"' + "".join(out) + '"'


SPACE = st.sampled_from(["", "", "", " ", "\n", "\t", " \r\n  "])


@st.composite
def json_texts(draw: st.DrawFn, depth: int = 3) -> str:
    """A JSON value as text, with objects that may repeat keys (in any spelling)."""
    kind = draw(st.sampled_from(["object", "object", "array", "string", "number", "literal"]
                                if depth > 0 else ["string", "number", "literal"]))
    w = draw(SPACE)
    if kind == "object":
        members = [draw(spelled(draw(st.sampled_from(TRICKY)))) + draw(SPACE) + ":" + draw(SPACE)
                   + draw(json_texts(depth - 1)) for _ in range(draw(st.integers(0, 5)))]
        return w + "{" + ",".join(members) + w + "}"
    if kind == "array":
        items = [draw(json_texts(depth - 1)) for _ in range(draw(st.integers(0, 4)))]
        return "[" + ",".join(items) + "]"
    if kind == "string":
        return draw(spelled(draw(st.sampled_from(TRICKY) | st.text(max_size=6))))
    if kind == "number":
        return draw(st.sampled_from(["0", "-1", "2.5", "1e3", "-0.0"]))
    return draw(st.sampled_from(["true", "false", "null"]))


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_texts())
def test_repeated_keys_are_found_exactly(text: str) -> None:
    raw = text.encode()
    doc = orjson.loads(raw)
    assert kept_strings(doc) == brute_kept(doc)
    assert repeats_a_key(raw, doc) == oracle_repeats(raw), text
    if oracle_repeats(raw):
        assert repeated_key(raw) is not None


FIELDS: dict[str, list[str]] = {
    "surveys": ["event_id", "customer_id", "touchpoint", "channel", "comment", "interaction_id",
                "segment.plan"],
    "interactions": ["event_id", "customer_id", "kind", "touchpoint", "channel", "outcome",
                     "segment.plan"],
    "customers": ["customer_id", "segment.plan", "owner.name", "owner.email", "owner.slack"],
}
VALID: dict[str, dict[str, Any]] = {
    "surveys": {"event_id": "e1", "customer_id": "c1", "survey": "nps", "score": 9,
                "occurred_at": AT, "segment": {"plan": "pro"}, "touchpoint": "web",
                "channel": "chat", "comment": "ok", "interaction_id": "i0"},
    "interactions": {"event_id": "i1", "customer_id": "c1", "occurred_at": AT, "kind": "call",
                     "touchpoint": "web", "channel": "phone", "outcome": "open",
                     "segment": {"plan": "pro"}},
    "customers": {"customer_id": "c1", "segment": {"plan": "pro"}, "updated_at": AT,
                  "owner": {"name": "Ana", "email": "ana@example.com", "slack": "@ana"}},
}
REQUIRED = {"surveys": {"event_id", "customer_id", "survey", "score", "occurred_at"},
            "interactions": {"event_id", "customer_id", "occurred_at", "kind"},
            "customers": {"customer_id", "segment", "updated_at"}}
#: Field names of the other contracts: unknown extras here, of any JSON type.
FOREIGN = {"surveys": ["kind", "outcome", "owner", "updated_at"],
           "interactions": ["score", "survey", "comment", "interaction_id", "owner"],
           "customers": ["score", "kind", "event_id", "occurred_at", "comment"]}


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(DECODERS)),
       st.lists(st.tuples(st.sampled_from(TRICKY), json_texts(2)), max_size=4), st.booleans(),
       st.data())
def test_every_decoder_rejects_exactly_the_documents_that_repeat_a_key(
        kind: str, extra: list[tuple[str, str]], segment_twice: bool, data: st.DataObject) -> None:
    """A valid document with extra members (top level or nested, in any spelling): the
    decoder says duplicate_key exactly when the oracle finds a repeated key, and accepts the
    document otherwise. Without extra members it checks the fields it knows, not a walk."""
    base = dict(VALID[kind])
    if data.draw(st.booleans()):  # the required fields only
        base = {k: v for k, v in base.items() if k in REQUIRED[kind]}
    for name in data.draw(st.sets(st.sampled_from(sorted(set(VALID[kind]) - REQUIRED[kind])))):
        base[name] = None  # null: the same as absent, but a key all the same
    for name in data.draw(st.sets(st.sampled_from(FOREIGN[kind]))):
        base[name] = data.draw(st.sampled_from(["x", 1, None, {"a": "b"}, ["c"]]))
    # unknown names only, so the document stays valid unless a key repeats
    members = [data.draw(spelled("x_" + k)) + ":" + v for k, v in extra]
    text = orjson.dumps(base).decode()[:-1]
    if segment_twice:
        text = text.replace('"segment":{', '"segment":{"plan":"pro",', 1)
    raw = (text + "".join("," + m for m in members) + "}").encode()
    result = DECODERS[kind](raw, b"c1", NOW)
    if oracle_repeats(raw):
        assert isinstance(result, Rejection) and result.code == E.DUPLICATE_KEY, (raw, result)
    else:
        assert not isinstance(result, Rejection), (raw, result)


# -- control characters and line separators -------------------------------------------------------
# Every C0 and C1 character, DEL, the separators, and look-alikes that must pass: other
# spaces, format characters, non-ASCII letters.
CHARS = [chr(c) for c in range(0x20)] + ["\x7f"] + [chr(c) for c in range(0x80, 0xA0)] + \
    ["\u2028", "\u2029", "\u00a0", "\u200b", "\u200d", "\u200e", "\u202e", "\u2003", "\ufeff",
     "\u00ad", "é", "😀", " ", "-", "\u3000", "\u2027", "\u202f", "\U000e0001"]


def refused(field: str, ch: str) -> bool:
    """The rule: no Cc, Zl or Zp character; a comment keeps tab, LF and CR; an e-mail
    address no space at all (the ASCII space included)."""
    if field == "comment" and ch in "\t\n\r":
        return False
    if field == "owner.email" and ch == " ":
        return True
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp")


def placed(kind: str, field: str, value: str, doc: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of `doc` (default: the valid document of `kind`) with `field` set to `value`."""
    copy: dict[str, Any] = json.loads(json.dumps(VALID[kind] if doc is None else doc))
    *path, last = field.split(".")
    target = copy
    for part in path:
        target = target[part]
    target[last] = value
    return copy


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from([(k, f) for k, fs in FIELDS.items() for f in fs]), st.sampled_from(CHARS),
       st.integers(0, 3), st.booleans())
def test_control_characters_and_line_separators(case: tuple[str, str], ch: str, at: int,
                                                escaped: bool) -> None:
    kind, field = case
    value = {"owner.email": "ana@example.com"}.get(field, "abc")
    value = value[:at] + ch + value[at:]
    doc = placed(kind, field, value)
    raw = orjson.dumps(doc)
    if escaped:  # the same document written with \u escapes only (json.dumps' ensure_ascii)
        raw = json.dumps(doc).encode()
    result = DECODERS[kind](raw, doc["customer_id"].encode(), NOW)
    if refused(field, ch):
        assert isinstance(result, Rejection) and result.code == E.INVALID_VALUE, (field, ch, result)
        named = "'segment'" if field.startswith("segment") else repr(field)
        assert named in result.reason and result.reason.isprintable()
    else:
        assert not isinstance(result, Rejection), (field, ch, result)
        if field != "comment":
            assert value.splitlines() == [value]  # one line, for headers, logs and the CLI


# -- hostile documents: a code from the closed list, or a record that goes everywhere -------------
HOSTILE_TIMES = [
    "0001-01-01T00:30:00+01:00", "0001-01-01T00:00:00Z", "0001-01-01T23:59:59-23:59",
    "9999-12-31T23:30:00-01:00", "9999-12-31T23:59:59.999Z", "9999-12-31T00:00:00+23:59",
    "1970-01-01T00:00:00Z", "1969-12-31T23:59:59.999Z", "1999-12-31T23:59:59.999Z",
    "2000-01-01T00:00:00Z", "1999-12-31T23:00:00-01:00", "2000-01-01T00:59:59.999+01:00",
    "2026-06-30T23:59:60Z", "2026-10-31T11:00:60+05:30", "2026-10-31T11:00:00+24:00",
    "2026-10-31T11:00:00+23:59", "2026-10-31T11:00:00-23:59", "2026-10-31T12:05:00Z",
    "2026-10-31T12:05:00.001Z", "2026-10-31T11:00:00Z\n", "2026-10-31T11:00:00Z\u2028",
    "2026-10-31T11:00:00." + "9" * 3000 + "Z", "2026-10-31T11:00:00.000000001-00:00",
    "+2026-10-31T11:00:00Z", "0000-12-31T23:59:59Z", "10000-01-01T00:00:00Z", "",
]
HOSTILE_TEXT = [
    "c1", "x" * 128, "x" * 129, "x" * 5000, "a\nb", "a\r\nBcc: evil@example.com", "\u2028", "\x85",
    "\x1b[31mred", "\x00", "  ", "-", "--help", "$(reboot)", "%s%n", "\u202egnp.exe", "😀" * 128,
    "\ud7ff", "\u00a0", "a\tb", "\x7f", "\x9b2J", "<!channel>", "a@b", "@", "ana@example.com\n",
]
NUMBERS = [b"NaN", b"-Infinity", b"1e309", b"-1e309", b"1e-400", b"-0", b"0.0", b"9" * 400,
           b"7.000000000000001", b"1E1", b"10.0", b"-0.0e0", b"18446744073709551616"]
DEEP = [b"[" * depth + b"]" * depth for depth in (10, 1023, 1024, 1025)] + \
    [b'{"a":' * depth + b"1" + b"}" * depth for depth in (500, 1024, 1025)]


@st.composite
def hostile(draw: st.DrawFn) -> tuple[str, bytes, bytes | None]:
    """(topic, value, key): a valid document with some fields replaced by hostile values,
    some raw tokens replaced (numbers, nesting) and, sometimes, a key repeated."""
    kind = draw(st.sampled_from(sorted(DECODERS)))
    doc = json.loads(json.dumps(VALID[kind]))
    if kind == "surveys":
        doc["score"] = draw(st.integers(0, 10))
    doc[TIME_FIELD[kind]] = draw(st.sampled_from(HOSTILE_TIMES) | st.builds(
        lambda ms, off: format_rfc3339(ms)[:19] + off,
        st.integers(MIN_MS, MAX_MS),
        st.sampled_from(["Z", "+23:59", "-23:59", "+01:00", "-00:01", "+00:00"])))
    for field in draw(st.lists(st.sampled_from(FIELDS[kind]), max_size=3)):
        doc = placed(kind, field, draw(st.sampled_from(HOSTILE_TEXT) | st.text(max_size=8)), doc)
    raw = orjson.dumps(doc)
    trick = draw(st.sampled_from(["none", "none", "number", "deep", "repeat", "ascii"]))
    if trick == "number":
        raw = raw[:-1] + b',"n":' + draw(st.sampled_from(NUMBERS)) + b"}"
        if kind == "surveys" and draw(st.booleans()):
            number = draw(st.sampled_from(NUMBERS))
            raw = raw.replace(b'"score":', b'"score":' + number + b',"s0":', 1)
    elif trick == "deep":
        raw = raw[:-1] + b',"n":' + draw(st.sampled_from(DEEP)) + b"}"
    elif trick == "repeat":
        name = draw(st.sampled_from(sorted(doc)))
        raw = raw[:-1] + b"," + orjson.dumps({name: doc[name]})[1:]
    elif trick == "ascii":
        raw = json.dumps(doc).encode()  # the same document, non-ASCII as \u escapes
    cid = doc.get("customer_id")
    key = draw(st.sampled_from([cid.encode() if isinstance(cid, str) else None, b"other", None]))
    return kind, raw, key


CFG = StepConfig(horizon_ms=30 * 86_400_000 + 3_600_000)
WINDOWS = parse_windows("1h,24h,7d,30d")


def detractor(customer_id: str, at: int) -> bytes:
    return orjson.dumps({"event_id": "poke", "customer_id": customer_id, "survey": "nps",
                         "score": 0, "occurred_at": format_rfc3339(at)})


def downstream(kind: str, raw: bytes, record: Any, min_ms: int) -> None:
    """Everything a record of `kind` feeds: the plan against a state, then an alert for its
    customer (with the record in it: as the response, the journey or the owner), rendered for
    e-mail and Slack, with CloudEvents headers, and the timestamps the HTTP API formats."""
    cfg = StepConfig(horizon_ms=CFG.horizon_ms, min_event_ms=min_ms)
    table: dict[str, Any] = {}
    cid = record.customer_id
    messages = [(kind, raw)]
    if kind != "surveys":  # the customer's first NPS response, a detractor: an alert
        at = record.updated_at if kind == "customers" else record.occurred_at
        messages.append(("surveys", detractor(cid, at)))
    alerts = []
    stream_time = None
    for offset, (topic, value) in enumerate(messages):
        p = plan(topic, table, cfg, partition=0, offset=offset,  # type: ignore[arg-type]
                 key=cid.encode(), value=value, now_ms=NOW)
        assert p.outcome == "accepted", (p.outcome, p.rejection)
        for k, v in [*p.before_alert, *p.after_alert]:
            table[k] = v
        if p.alert is not None:
            alerts.append(p.alert)
        stream_time = p.stream_time if p.stream_time is not None else stream_time
    if kind == "surveys":  # the response itself in an alert, whatever its score
        alerts.append(build_alert(CustomerState.empty(cid), record, Turn("detractor", None),
                                  journey=(), detected_at_ms=NOW))
    alert = alerts[-1]
    for text in (alert["occurred_at"], alert["detected_at"],
                 *(i["occurred_at"] for i in alert["recent_interactions"])):
        assert format_rfc3339(parse_rfc3339(text)) == text  # type: ignore[arg-type]
    orjson.dumps(alert)
    cloudevent_headers(alert, source="cxstream/test")
    slack_message(alert)
    subject, body = email_message(alert)
    message = EmailMessage()  # raises on a header with a line break
    message["Subject"] = f"Customer {alert['customer_id']}"
    message["X-Customer"] = alert["customer_id"]
    if (alert.get("owner") or {}).get("email"):
        message["To"] = alert["owner"]["email"]
    message.set_content(body)
    message.as_bytes()
    assert subject.splitlines() == [subject]
    # the HTTP API: the earliest `as_of` of each window, from the stream time
    assert stream_time is not None
    for window in WINDOWS:
        format_rfc3339(floor_minute(stream_time - cfg.horizon_ms + 59_999) + window.ms)
        format_rfc3339(floor_minute(stream_time) - window.ms)


ONE_LINE = {"event_id", "customer_id", "touchpoint", "channel", "interaction_id", "kind", "outcome"}


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile(), st.sampled_from([DEFAULT_MIN_EVENT_MS, 0]))
def test_hostile_documents_are_rejected_with_a_code_or_go_everywhere(
        case: tuple[str, bytes, bytes | None], min_ms: int) -> None:
    kind, raw, key = case
    result = DECODERS[kind](raw, key, NOW, min_ms)
    if isinstance(result, Rejection):
        assert result.code in set(E) and result.code not in (E.PROCESSING_ERROR, E.TOO_LATE), result
        assert 0 < len(result.reason) < 300 and result.reason.splitlines() == [result.reason]
        return
    assert isinstance(result, (SurveyResponse, Interaction, CustomerProfile))
    at = result.updated_at if isinstance(result, CustomerProfile) else result.occurred_at
    assert max(min_ms, MIN_MS) <= at <= NOW + MAX_FUTURE_SKEW_MS
    assert oracle_repeats(raw) in (False, None)
    for name in ONE_LINE:
        value = getattr(result, name, None)
        assert value is None or value.splitlines() == [value], name
    for value in (getattr(result, "segment", None) or {}).values():
        assert value.splitlines() == [value]
    owner = getattr(result, "owner", None)
    if owner is not None:
        for value in (owner.name, owner.email, owner.slack):
            assert value is None or value.splitlines() == [value]
    downstream(kind, raw, result, min_ms)


@pytest.mark.parametrize("kind", sorted(DECODERS))
@pytest.mark.parametrize("text", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"])
def test_the_reported_timestamps_are_dead_lettered(kind: str, text: str) -> None:
    """The two timestamps of the report: valid RFC 3339, but year 0 and year 10000 in UTC."""
    doc = placed(kind, TIME_FIELD[kind], text)
    for min_ms in (DEFAULT_MIN_EVENT_MS, 0, MIN_MS):
        cfg = StepConfig(horizon_ms=CFG.horizon_ms, min_event_ms=min_ms)
        p = plan(kind, {}, cfg, partition=0, offset=0,  # type: ignore[arg-type]
                 key=b"c1", value=orjson.dumps(doc), now_ms=NOW)
        assert p.outcome == "deadlettered" and p.rejection is not None
        assert p.rejection.code == (E.TIMESTAMP_OUT_OF_RANGE if text.startswith("0001")
                                    else E.FUTURE_TIMESTAMP)


def test_the_setting_gives_the_decoders_default() -> None:
    assert Settings.from_env({}).min_event_time == DEFAULT_MIN_EVENT_MS == \
        StepConfig(horizon_ms=1).min_event_ms
    env = {"CXSTREAM_MIN_EVENT_TIME": "2010-05-01T02:00:00+02:00"}
    assert Settings.from_env(env).min_event_time == parse_rfc3339("2010-05-01T00:00:00Z")
