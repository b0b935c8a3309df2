"""Every validation rule maps to its dead-letter code, in the documented order; valid documents
decode to exactly their fields; no input makes the decoder raise or echo a string value. Survey
responses name a program of the registry the decoder is given (`scales`, arbitrary ones here),
and their score must lie on that program's scale."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cxstream.core import fieldrules
from cxstream.core.decode import (
    DEFAULT_MIN_EVENT_MS,
    MAX_FUTURE_SKEW_MS,
    MAX_VALUE_BYTES,
    decode_interaction,
    decode_profile,
    decode_survey,
)
from cxstream.core.errors import ErrorCode as E
from cxstream.core.errors import Rejection
from cxstream.core.model import BUILTIN_SCALES, CustomerProfile, Interaction, Owner, SurveyResponse
from cxstream.core.programs import BUILTINS, METRICS, NPS_SCALE, PROGRAM_ID, Registry, define, scales
from cxstream.core.timefmt import MAX_MS, MIN_MS, format_rfc3339, parse_rfc3339

NOW = 1_793_448_000_000  # 2026-10-31T12:00:00Z
assert format_rfc3339(NOW) == "2026-10-31T12:00:00Z"
DROP = ...  # a field value meaning "leave the field out"

Decoder = Callable[[bytes, "bytes | None", int], Any]
DECODERS: tuple[Decoder, ...] = (decode_survey, decode_interaction, decode_profile)


def _doc(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    doc = {**base, **over}
    return {k: v for k, v in doc.items() if v is not DROP}


def survey(**over: Any) -> dict[str, Any]:
    return _doc({"event_id": "e1", "customer_id": "c1", "survey": "nps", "score": 9,
                 "occurred_at": "2026-10-31T11:00:00Z"}, over)


def interaction(**over: Any) -> dict[str, Any]:
    return _doc({"event_id": "i1", "customer_id": "c1", "occurred_at": "2026-10-31T11:00:00Z",
                 "kind": "call"}, over)


def profile(**over: Any) -> dict[str, Any]:
    return _doc({"customer_id": "c1", "segment": {"plan": "pro"},
                 "updated_at": "2026-10-31T11:00:00Z"}, over)


def owner(**over: Any) -> dict[str, Any]:
    return profile(owner=_doc({"name": "Ana", "email": "ana@example.com", "slack": "@ana"}, over))


BUILDERS: dict[Decoder, Callable[..., dict[str, Any]]] = {
    decode_survey: survey, decode_interaction: interaction, decode_profile: profile,
}


def run(decode: Decoder, doc: Any, key: bytes | None = b"c1", now: int = NOW) -> Any:
    raw = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    return decode(raw, key, now)


def code(decode: Decoder, doc: Any, key: bytes | None = b"c1", now: int = NOW) -> E | None:
    result = run(decode, doc, key, now)
    return result.code if isinstance(result, Rejection) else None


S, I, P = decode_survey, decode_interaction, decode_profile

# -- one case per rule, per event -------------------------------------------------------------
RULES: list[tuple[str, Decoder, Any, E]] = [
    # too_large / not_json / not_object: the same for every event
    *[(f"{d.__name__}: {name}", d, doc, expected) for d in DECODERS for name, doc, expected in [
        ("over 64 KiB", b" " * (MAX_VALUE_BYTES + 1), E.TOO_LARGE),
        ("invalid UTF-8", b'{"a": "\xff"}', E.NOT_JSON),
        ("bare invalid UTF-8", b"\xff\xfe", E.NOT_JSON),
        ("lone surrogate escape", b'{"a": "\\ud800"}', E.NOT_JSON),
        ("empty", b"", E.NOT_JSON),
        ("whitespace", b"  \n", E.NOT_JSON),
        ("truncated", b'{"a": 1', E.NOT_JSON),
        ("trailing garbage", b'{"a": 1} x', E.NOT_JSON),
        ("two documents", b"{} {}", E.NOT_JSON),
        ("NaN", b'{"a": NaN}', E.NOT_JSON),
        ("Infinity", b'{"a": Infinity}', E.NOT_JSON),
        ("number beyond double", b'{"a": 1e400}', E.NOT_JSON),
        ("single quotes", b"{'a': 1}", E.NOT_JSON),
        ("nesting over 1024", b"[" * 1100 + b"]" * 1100, E.NOT_JSON),
        ("number", b"42", E.NOT_OBJECT),
        ("string", b'"text"', E.NOT_OBJECT),
        ("null", b"null", E.NOT_OBJECT),
        ("true", b"true", E.NOT_OBJECT),
        ("array", b"[]", E.NOT_OBJECT),
        ("array of a valid document", b"[" + orjson.dumps(BUILDERS[d]()) + b"]", E.NOT_OBJECT),
    ]],
    # duplicate_key: at any depth, whatever the spelling of the key
    *[(f"{d.__name__}: {name}", d, orjson.dumps(BUILDERS[d]())[:-1] + extra + b"}", E.DUPLICATE_KEY)
      for d in DECODERS for name, extra in [
          ("customer_id twice, same value", b',"customer_id":"c1"'),
          ("unknown key twice", b',"x":1,"x":1'),
          ("escaped spelling of a key", b',"x":1,"\\u0078":2'),
          ("nested object", b',"x":{"a":1,"b":{"c":[{"d":1,"d":2}]}}'),
          ("object in an array", b',"x":[1,{"a":"a","a":"b"}]'),
          ("segment dimension twice", b',"segment":{"plan":"pro","plan":"free"}'),
          ("repeat after escaped quotes", b',"x":"say \\"hi\\"","y":1,"y":2'),
      ]],
    ("survey: score twice, the last one valid", S,
     b'{"event_id":"e1","customer_id":"c1","survey":"nps","score":11,"score":7,'
     b'"occurred_at":"2026-10-31T11:00:00Z"}', E.DUPLICATE_KEY),
    ("profile: owner key twice", P, orjson.dumps(profile())[:-1]
     + b',"owner":{"email":"a@b.c","email":"x@y.z"}}', E.DUPLICATE_KEY),
    # missing_field
    *[(f"survey: {f} missing", S, survey(**{f: DROP}), E.MISSING_FIELD)
      for f in ("event_id", "customer_id", "survey", "score", "occurred_at")],
    *[(f"survey: {f} null", S, survey(**{f: None}), E.MISSING_FIELD)
      for f in ("event_id", "customer_id", "survey", "score", "occurred_at")],
    *[(f"interaction: {f} missing", I, interaction(**{f: DROP}), E.MISSING_FIELD)
      for f in ("event_id", "customer_id", "occurred_at", "kind")],
    ("interaction: kind null", I, interaction(kind=None), E.MISSING_FIELD),
    *[(f"profile: {f} missing", P, profile(**{f: DROP}), E.MISSING_FIELD)
      for f in ("customer_id", "segment", "updated_at")],
    ("profile: segment null", P, profile(segment=None), E.MISSING_FIELD),
    ("empty object", S, {}, E.MISSING_FIELD),
    # wrong_type
    ("survey: event_id number", S, survey(event_id=5), E.WRONG_TYPE),
    ("survey: customer_id array", S, survey(customer_id=["c1"]), E.WRONG_TYPE),
    ("survey: survey number", S, survey(survey=1), E.WRONG_TYPE),
    ("survey: survey object", S, survey(survey={"kind": "nps"}), E.WRONG_TYPE),
    ("survey: score string", S, survey(score="9"), E.WRONG_TYPE),
    ("survey: score true", S, survey(score=True), E.WRONG_TYPE),
    ("survey: score false", S, survey(score=False), E.WRONG_TYPE),
    ("survey: score fraction", S, survey(score=8.5), E.WRONG_TYPE),
    ("survey: score tiny fraction", S, survey(score=9.000001), E.WRONG_TYPE),
    ("survey: score array", S, survey(score=[9]), E.WRONG_TYPE),
    ("survey: occurred_at number", S, survey(occurred_at=1_793_444_400_000), E.WRONG_TYPE),
    ("survey: segment array", S, survey(segment=["plan"]), E.WRONG_TYPE),
    ("survey: segment string", S, survey(segment="plan=pro"), E.WRONG_TYPE),
    ("survey: segment value number", S, survey(segment={"plan": 1}), E.WRONG_TYPE),
    ("survey: segment value null", S, survey(segment={"plan": None}), E.WRONG_TYPE),
    ("survey: touchpoint number", S, survey(touchpoint=3), E.WRONG_TYPE),
    ("survey: channel boolean", S, survey(channel=False), E.WRONG_TYPE),
    ("survey: comment object", S, survey(comment={}), E.WRONG_TYPE),
    ("survey: interaction_id number", S, survey(interaction_id=7), E.WRONG_TYPE),
    ("interaction: kind number", I, interaction(kind=1), E.WRONG_TYPE),
    ("interaction: outcome array", I, interaction(outcome=[]), E.WRONG_TYPE),
    ("interaction: occurred_at number", I, interaction(occurred_at=0), E.WRONG_TYPE),
    ("interaction: segment value array", I, interaction(segment={"plan": ["pro"]}), E.WRONG_TYPE),
    ("profile: customer_id number", P, profile(customer_id=1), E.WRONG_TYPE),
    ("profile: segment array", P, profile(segment=[]), E.WRONG_TYPE),
    ("profile: updated_at boolean", P, profile(updated_at=True), E.WRONG_TYPE),
    ("profile: owner string", P, profile(owner="ana@example.com"), E.WRONG_TYPE),
    ("profile: owner array", P, profile(owner=[]), E.WRONG_TYPE),
    ("profile: owner.name number", P, owner(name=1), E.WRONG_TYPE),
    ("profile: owner.email array", P, owner(email=["ana@example.com"]), E.WRONG_TYPE),
    ("profile: owner.slack object", P, owner(slack={}), E.WRONG_TYPE),
    ("profile: value string", P, profile(value="strategic"), E.WRONG_TYPE),
    ("profile: value array", P, profile(value=[]), E.WRONG_TYPE),
    ("profile: value.tier number", P, profile(value={"tier": 1}), E.WRONG_TYPE),
    ("profile: value.arr string", P, profile(value={"arr": "5", "currency": "EUR"}), E.WRONG_TYPE),
    ("profile: value.arr boolean", P, profile(value={"arr": True, "currency": "EUR"}), E.WRONG_TYPE),
    ("profile: value.currency number", P, profile(value={"arr": 5, "currency": 978}), E.WRONG_TYPE),
    # invalid_value
    ("survey: event_id empty", S, survey(event_id=""), E.INVALID_VALUE),
    ("profile: value.tier unknown", P, profile(value={"tier": "gold"}), E.INVALID_VALUE),
    ("profile: value.tier capitalised", P, profile(value={"tier": "High"}), E.INVALID_VALUE),
    ("profile: value.arr negative", P, profile(value={"arr": -0.01, "currency": "EUR"}), E.INVALID_VALUE),
    ("profile: value.arr without currency", P, profile(value={"arr": 5}), E.INVALID_VALUE),
    ("profile: value.arr, currency null", P, profile(value={"arr": 5, "currency": None}), E.INVALID_VALUE),
    ("profile: value.currency lower case", P, profile(value={"arr": 5, "currency": "eur"}), E.INVALID_VALUE),
    ("profile: value.currency 4 letters", P, profile(value={"tier": "low", "currency": "EURO"}), E.INVALID_VALUE),
    ("profile: value.currency newline", P, profile(value={"arr": 5, "currency": "EUR\n"}), E.INVALID_VALUE),
    ("survey: event_id 129", S, survey(event_id="x" * 129), E.INVALID_VALUE),
    ("survey: customer_id empty", S, survey(customer_id=""), E.INVALID_VALUE),
    ("survey: customer_id 129", S, survey(customer_id="x" * 129), E.INVALID_VALUE),
    ("survey: touchpoint empty", S, survey(touchpoint=""), E.INVALID_VALUE),
    ("survey: touchpoint 65", S, survey(touchpoint="x" * 65), E.INVALID_VALUE),
    ("survey: channel 65", S, survey(channel="x" * 65), E.INVALID_VALUE),
    ("survey: comment 4001", S, survey(comment="x" * 4001), E.INVALID_VALUE),
    ("survey: interaction_id empty", S, survey(interaction_id=""), E.INVALID_VALUE),
    ("survey: interaction_id 129", S, survey(interaction_id="x" * 129), E.INVALID_VALUE),
    ("survey: 129 code points (in 129 emoji)", S, survey(event_id="😀" * 129), E.INVALID_VALUE),
    ("survey: segment 17 dimensions", S, survey(segment={f"d{i}": "v" for i in range(17)}), E.INVALID_VALUE),
    ("survey: segment name uppercase", S, survey(segment={"Plan": "pro"}), E.INVALID_VALUE),
    ("survey: segment name starts with digit", S, survey(segment={"1plan": "pro"}), E.INVALID_VALUE),
    ("survey: segment name starts with _", S, survey(segment={"_plan": "pro"}), E.INVALID_VALUE),
    ("survey: segment name with -", S, survey(segment={"value-tier": "x"}), E.INVALID_VALUE),
    ("survey: segment name with space", S, survey(segment={"plan ": "pro"}), E.INVALID_VALUE),
    ("survey: segment name with newline", S, survey(segment={"plan\n": "pro"}), E.INVALID_VALUE),
    ("survey: segment name non-ASCII", S, survey(segment={"região": "br"}), E.INVALID_VALUE),
    ("survey: segment name empty", S, survey(segment={"": "x"}), E.INVALID_VALUE),
    ("survey: segment name 65", S, survey(segment={"a" * 65: "x"}), E.INVALID_VALUE),
    ("survey: segment value empty", S, survey(segment={"plan": ""}), E.INVALID_VALUE),
    ("survey: segment value 129", S, survey(segment={"plan": "x" * 129}), E.INVALID_VALUE),
    ("interaction: kind empty", I, interaction(kind=""), E.INVALID_VALUE),
    ("interaction: kind 65", I, interaction(kind="x" * 65), E.INVALID_VALUE),
    ("interaction: outcome empty", I, interaction(outcome=""), E.INVALID_VALUE),
    ("interaction: event_id 129", I, interaction(event_id="x" * 129), E.INVALID_VALUE),
    ("interaction: segment name", I, interaction(segment={"Plan": "pro"}), E.INVALID_VALUE),
    ("profile: customer_id 129", P, profile(customer_id="x" * 129), E.INVALID_VALUE),
    ("profile: segment 17 dimensions", P, profile(segment={f"d{i}": "v" for i in range(17)}), E.INVALID_VALUE),
    ("profile: segment value empty", P, profile(segment={"plan": ""}), E.INVALID_VALUE),
    ("profile: owner.name empty", P, owner(name=""), E.INVALID_VALUE),
    ("profile: owner.name 129", P, owner(name="x" * 129), E.INVALID_VALUE),
    ("profile: owner.slack empty", P, owner(slack=""), E.INVALID_VALUE),
    ("profile: owner.email without @", P, owner(email="ana.example.com"), E.INVALID_VALUE),
    ("profile: owner.email two @", P, owner(email="ana@x@example.com"), E.INVALID_VALUE),
    ("profile: owner.email leading @", P, owner(email="@example.com"), E.INVALID_VALUE),
    ("profile: owner.email trailing @", P, owner(email="ana@"), E.INVALID_VALUE),
    ("profile: owner.email with space", P, owner(email="ana @example.com"), E.INVALID_VALUE),
    ("profile: owner.email with newline", P, owner(email="ana@example.com\n"), E.INVALID_VALUE),
    ("profile: owner.email with tab", P, owner(email="ana@\texample.com"), E.INVALID_VALUE),
    ("profile: owner.email with DEL", P, owner(email="ana@example.com\x7f"), E.INVALID_VALUE),
    ("profile: owner.email display form", P, owner(email="Ana <ana@example.com>"), E.INVALID_VALUE),
    ("profile: owner.email 2 chars", P, owner(email="a@"), E.INVALID_VALUE),
    ("profile: owner.email 255", P, owner(email="a@" + "b" * 253), E.INVALID_VALUE),
    # invalid_value: control characters and line separators (str.splitlines breaks at all of
    # these but the C0/C1 ones that are not line breaks)
    *[(f"{d.__name__}: {field} with {ch!r}", d, build(**{field: over(ch)}), E.INVALID_VALUE)
      for d, build, field, over in [
          (S, survey, "event_id", lambda c: "e" + c + "1"),
          (S, survey, "customer_id", lambda c: "c1" + c),
          (S, survey, "touchpoint", lambda c: c + "web"),
          (S, survey, "channel", lambda c: "ch" + c),
          (S, survey, "interaction_id", lambda c: "i" + c),
          (I, interaction, "kind", lambda c: "call" + c),
          (I, interaction, "outcome", lambda c: "ok" + c),
          (I, interaction, "event_id", lambda c: c),
          (P, profile, "customer_id", lambda c: "c" + c),
          (P, owner, "name", lambda c: "Ana" + c + "Bcc: x"),
          (P, owner, "slack", lambda c: "@ana" + c),
          (P, owner, "email", lambda c: "ana@example.com" + c),
          (S, survey, "segment", lambda c: {"plan": "pro" + c}),
          (P, profile, "segment", lambda c: {"plan": c}),
      ]
      for ch in "\n\r\t\v\f\x00\x1b\x1c\x1d\x1e\x7f\x85\x9f\u2028\u2029"],
    *[(f"survey: comment with {ch!r}", S, survey(comment="fine" + ch + "text"), E.INVALID_VALUE)
      for ch in "\v\f\x00\x08\x0e\x1b\x1c\x1d\x1e\x1f\x7f\x80\x85\x9f\u2028\u2029"],
    # unknown_survey
    *[(f"survey: survey {s!r}", S, survey(survey=s), E.UNKNOWN_SURVEY)
      for s in ("NPS", "Nps", "nps ", "csat2", "ces\n", "", "promoter", "enps")],
    # score_out_of_range
    ("survey: nps -1", S, survey(score=-1), E.SCORE_OUT_OF_RANGE),
    ("survey: nps 11", S, survey(score=11), E.SCORE_OUT_OF_RANGE),
    ("survey: nps 100", S, survey(score=100), E.SCORE_OUT_OF_RANGE),
    ("survey: csat 0", S, survey(survey="csat", score=0), E.SCORE_OUT_OF_RANGE),
    ("survey: csat 6", S, survey(survey="csat", score=6), E.SCORE_OUT_OF_RANGE),
    ("survey: ces 0", S, survey(survey="ces", score=0), E.SCORE_OUT_OF_RANGE),
    ("survey: ces 6", S, survey(survey="ces", score=6), E.SCORE_OUT_OF_RANGE),
    ("survey: nps 11.0", S, survey(score=11.0), E.SCORE_OUT_OF_RANGE),
    ("survey: nps 1e300", S, survey(score=1e300), E.SCORE_OUT_OF_RANGE),
    ("survey: nps -1e300", S, survey(score=-1e300), E.SCORE_OUT_OF_RANGE),
    ("survey: nps 2**63-1", S, survey(score=2**63 - 1), E.SCORE_OUT_OF_RANGE),
    ("survey: nps -2**63", S, survey(score=-(2**63)), E.SCORE_OUT_OF_RANGE),
    ("survey: nps 2**64-1", S, b'{"event_id":"e1","customer_id":"c1","survey":"nps","score":18446744073709551615,'
                               b'"occurred_at":"2026-10-31T11:00:00Z"}', E.SCORE_OUT_OF_RANGE),
    ("survey: nps 10**40", S, b'{"event_id":"e1","customer_id":"c1","survey":"nps","score":1' + b"0" * 40 +
                             b',"occurred_at":"2026-10-31T11:00:00Z"}', E.SCORE_OUT_OF_RANGE),
    # bad_timestamp
    *[(f"{d.__name__}: timestamp {ts!r}", d, BUILDERS[d](**{field: ts}), E.BAD_TIMESTAMP)
      for d, field in ((S, "occurred_at"), (I, "occurred_at"), (P, "updated_at"))
      for ts in ("2026-10-31T11:00:00", "2026-10-31", "", "2026-02-30T00:00:00Z", "2026-10-31T24:00:00Z",
                 "2026-10-31 11:00:00Z", "2026-10-31T11:00:00Z\n", "２０２６-10-31T11:00:00Z", "yesterday",
                 "2026-10-31T11:00:00+25:00", "x" * 5000)],
    # timestamp_out_of_range: before CXSTREAM_MIN_EVENT_TIME (2000 by default), year 0 after
    # the offset included
    *[(f"{d.__name__}: timestamp {ts!r}", d, BUILDERS[d](**{field: ts}), E.TIMESTAMP_OUT_OF_RANGE)
      for d, field in ((S, "occurred_at"), (I, "occurred_at"), (P, "updated_at"))
      for ts in ("0001-01-01T00:30:00+01:00", "0001-01-01T00:00:00+23:59",
                 "0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "1999-12-31T23:59:59.999Z",
                 "2000-01-01T00:59:59.999+01:00", "1969-12-31T23:59:59Z")],
    # future_timestamp
    ("survey: 1 ms past the skew", S, survey(occurred_at="2026-10-31T12:05:00.001Z"), E.FUTURE_TIMESTAMP),
    ("survey: far future", S, survey(occurred_at="9999-12-31T23:59:59Z"), E.FUTURE_TIMESTAMP),
    ("survey: beyond year 9999 after the offset", S,
     survey(occurred_at="9999-12-31T23:30:00-01:00"), E.FUTURE_TIMESTAMP),
    ("profile: beyond year 9999 after the offset", P,
     profile(updated_at="9999-12-31T23:59:00-23:59"), E.FUTURE_TIMESTAMP),
    ("survey: future in +05:30", S, survey(occurred_at="2026-10-31T17:35:00.001+05:30"), E.FUTURE_TIMESTAMP),
    ("interaction: future", I, interaction(occurred_at="2026-10-31T12:06:00Z"), E.FUTURE_TIMESTAMP),
    ("profile: future", P, profile(updated_at="2026-10-31T09:05:00.001-03:00"), E.FUTURE_TIMESTAMP),
]


@pytest.mark.parametrize("decode,doc,expected", [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_each_rule_has_its_code(decode: Decoder, doc: Any, expected: E) -> None:
    result = run(decode, doc)
    assert isinstance(result, Rejection) and result.code == expected, result
    assert result.reason and len(result.reason) < 300


# -- key_mismatch ------------------------------------------------------------------------------
@pytest.mark.parametrize("decode", DECODERS, ids=lambda d: d.__name__)
@pytest.mark.parametrize("key", [None, b"", b"c2", b"C1", b"c1 ", b" c1", b"c1\n", b"\xffc1"])
def test_key_must_be_the_customer_id(decode: Decoder, key: bytes | None) -> None:
    result = run(decode, BUILDERS[decode](), key=key)
    assert isinstance(result, Rejection) and result.code == E.KEY_MISMATCH
    assert ("no key" in result.reason) == (key is None)


@pytest.mark.parametrize("decode", DECODERS, ids=lambda d: d.__name__)
def test_key_is_the_utf8_of_the_customer_id(decode: Decoder) -> None:
    doc = BUILDERS[decode](customer_id="ção-😀")
    assert code(decode, doc, key="ção-😀".encode()) is None
    assert code(decode, doc, key="ção-😀".encode("utf-16")) == E.KEY_MISMATCH
    assert code(decode, doc, key=bytearray("ção-😀".encode())) is None


# -- the order of the checks -------------------------------------------------------------------
ORDER = [
    ("too_large over not_json", S, b"{" * (MAX_VALUE_BYTES + 1), E.TOO_LARGE),
    ("too_large over a valid document", S, orjson.dumps(survey(pad="x" * MAX_VALUE_BYTES)), E.TOO_LARGE),
    ("duplicate key over missing", S, orjson.dumps(survey(score=DROP))[:-1] + b',"a":1,"a":1}',
     E.DUPLICATE_KEY),
    ("duplicate key over every later rule", S,
     orjson.dumps(survey(event_id="", survey="x", score=99, occurred_at="x"))[:-1]
     + b',"event_id":""}', E.DUPLICATE_KEY),
    ("not_object over duplicate key", S, b'[{"a":1,"a":2}]', E.NOT_OBJECT),
    ("not_json over duplicate key", S, b'{"a":1,"a":2', E.NOT_JSON),
    ("invalid control character over unknown survey", S, survey(survey="x", channel="a\nb"),
     E.INVALID_VALUE),
    ("invalid control character over bad timestamp", P, owner(name="a\rb", updated_at="x"),
     E.INVALID_VALUE),
    ("bad timestamp over key", S, survey(occurred_at="x"), E.BAD_TIMESTAMP),
    ("out of range over key", S, survey(occurred_at="1999-01-01T00:00:00Z"),
     E.TIMESTAMP_OUT_OF_RANGE),
    ("missing over wrong type of an earlier field", S, survey(event_id=5, occurred_at=DROP), E.MISSING_FIELD),
    ("missing over invalid", S, survey(event_id="", score=DROP), E.MISSING_FIELD),
    ("missing over unknown survey", S, survey(survey="x", occurred_at=DROP), E.MISSING_FIELD),
    ("missing over key", S, survey(score=DROP), E.MISSING_FIELD),
    ("wrong type over invalid", S, survey(event_id="x" * 500, channel=5), E.WRONG_TYPE),
    ("wrong type of segment value over invalid id", S, survey(event_id="", segment={"plan": 1}), E.WRONG_TYPE),
    ("wrong type of score over unknown survey", S, survey(survey="x", score="9"), E.WRONG_TYPE),
    ("wrong type over bad timestamp", S, survey(score=1.5, occurred_at="x"), E.WRONG_TYPE),
    ("wrong type of owner over invalid segment", P, profile(segment={"Plan": "x"}, owner=1), E.WRONG_TYPE),
    ("invalid over unknown survey", S, survey(survey="x", touchpoint=""), E.INVALID_VALUE),
    ("invalid segment over score", S, survey(score=99, segment={"A": "b"}), E.INVALID_VALUE),
    ("invalid over bad timestamp", I, interaction(kind="", occurred_at="x"), E.INVALID_VALUE),
    ("invalid email over future", P, owner(email="x", updated_at="2099-01-01T00:00:00Z"), E.INVALID_VALUE),
    ("unknown survey over out-of-range score", S, survey(survey="x", score=99), E.UNKNOWN_SURVEY),
    ("unknown survey over bad timestamp", S, survey(survey="x", occurred_at="x"), E.UNKNOWN_SURVEY),
    ("score over bad timestamp", S, survey(score=11, occurred_at="x"), E.SCORE_OUT_OF_RANGE),
    ("score over future", S, survey(score=11, occurred_at="2099-01-01T00:00:00Z"), E.SCORE_OUT_OF_RANGE),
]


@pytest.mark.parametrize("decode,doc,expected", [r[1:] for r in ORDER], ids=[r[0] for r in ORDER])
def test_the_first_rule_broken_wins(decode: Decoder, doc: Any, expected: E) -> None:
    assert code(decode, doc, key=b"other") == expected


@pytest.mark.parametrize("decode", DECODERS, ids=lambda d: d.__name__)
def test_timestamp_rules_come_before_the_key(decode: Decoder) -> None:
    field = "updated_at" if decode is decode_profile else "occurred_at"
    assert code(decode, BUILDERS[decode](**{field: "x"}), key=None) == E.BAD_TIMESTAMP
    assert code(decode, BUILDERS[decode](**{field: "1999-01-01T00:00:00Z"}), key=None) == \
        E.TIMESTAMP_OUT_OF_RANGE
    assert code(decode, BUILDERS[decode](**{field: "2099-01-01T00:00:00Z"}), key=None) == E.FUTURE_TIMESTAMP


# -- boundaries that are accepted ---------------------------------------------------------------
ACCEPTED: list[tuple[str, Decoder, dict[str, Any]]] = [
    ("nps 0", S, survey(score=0)), ("nps 10", S, survey(score=10)),
    ("csat 1", S, survey(survey="csat", score=1)), ("csat 5", S, survey(survey="csat", score=5)),
    ("ces 1", S, survey(survey="ces", score=1)), ("ces 5", S, survey(survey="ces", score=5)),
    ("score 7.0", S, survey(score=7.0)), ("score -0.0", S, survey(score=-0.0)),
    ("128-char ids", S, survey(event_id="x" * 128, customer_id="c1", interaction_id="y" * 128)),
    ("128 emoji id", S, survey(event_id="😀" * 128)),
    ("64-char labels", S, survey(touchpoint="t" * 64, channel="c" * 64)),
    ("1-char strings", S, survey(event_id="e", touchpoint="t", channel="c", interaction_id="i")),
    ("empty comment", S, survey(comment="")), ("4000-char comment", S, survey(comment="x" * 4000)),
    ("16 dimensions", S, survey(segment={f"d{i}": "v" for i in range(16)})),
    ("64-char dimension name, 128-char value", S, survey(segment={"a" * 64: "v" * 128})),
    ("dimension name with digits and _", S, survey(segment={"value_tier_2": "high", "x": "y"})),
    ("empty segment", S, survey(segment={})),
    ("nulls for every optional field", S, survey(segment=None, touchpoint=None, channel=None,
                                                 comment=None, interaction_id=None)),
    ("unknown fields", S, survey(extra={"nested": [1, 2, None]}, Score=99, SURVEY="x", v=2)),
    ("exactly 5 minutes ahead", S, survey(occurred_at="2026-10-31T12:05:00Z")),
    ("exactly 5 minutes ahead, +05:30", S, survey(occurred_at="2026-10-31T17:35:00+05:30")),
    ("exactly 5 minutes ahead, -03:00", S, survey(occurred_at="2026-10-31T09:05:00.000-03:00")),
    ("the earliest time accepted by default", S, survey(occurred_at="2000-01-01T00:00:00Z")),
    ("the earliest time in an offset", S, survey(occurred_at="2000-01-01T01:00:00+01:00")),
    ("comment with line breaks and tabs", S, survey(comment="line 1\nline 2\r\n\tindented\r")),
    ("comment of typographic text", S,
     survey(comment="Ninguém — “suporte” … ‘ok’ nº 5, 50 %\u00a0")),
    ("non-ASCII ids and labels", S,
     survey(event_id="ção-😀", touchpoint="suporte—web", channel="e‑mail",
            interaction_id="ü\u00a0ß", segment={"plan": "prô «x»"})),
    ("format and space characters are not control characters", S,
     survey(event_id="a\u200db\u00adc\u2003d\ufeff", segment={"plan": "x\u200ey"})),
    ("a key equal to a value, quotes in strings", S,
     survey(channel="event_id", comment='say "event_id": "e1", \\"x\\"', segment={"plan": "plan"})),
    ("the same key in different objects", S,
     survey(segment={"plan": "pro"}, extra={"plan": "x", "y": {"plan": 1}},
            more=[{"plan": 1}, {"plan": 2}])),
    ("profile owner with non-ASCII", P, owner(name="João «Zé» Ñandú", slack="@joão")),
    ("lowercase t and z", S, survey(occurred_at="2026-10-31t11:00:00z")),
    ("long fraction", S, survey(occurred_at="2026-10-31T11:00:00." + "9" * 50 + "Z")),
    ("interaction with everything", I, interaction(touchpoint="support", channel="email", outcome="open",
                                                   segment={"plan": "pro"})),
    ("interaction free kind", I, interaction(kind="Something Else Entirely!")),
    ("interaction 64-char kind", I, interaction(kind="k" * 64)),
    ("interaction nulls", I, interaction(touchpoint=None, channel=None, outcome=None, segment=None)),
    ("profile empty segment", P, profile(segment={})),
    ("profile owner null", P, profile(owner=None)),
    ("profile owner empty", P, profile(owner={})),
    ("profile owner nulls", P, profile(owner={"name": None, "email": None, "slack": None})),
    ("profile owner extra fields", P, profile(owner={"team": "emea", "name": "Ana"})),
    ("profile shortest email", P, owner(email="a@b")),
    ("profile 254-char email", P, owner(email="a@" + "b" * 252)),
    ("profile non-ASCII email", P, owner(email="joão@exemplo.com.br")),
    ("profile 128-char name and slack", P, owner(name="n" * 128, slack="s" * 128)),
]


@pytest.mark.parametrize("decode,doc", [r[1:] for r in ACCEPTED], ids=[r[0] for r in ACCEPTED])
def test_boundaries_are_accepted(decode: Decoder, doc: dict[str, Any]) -> None:
    result = run(decode, doc)
    assert not isinstance(result, Rejection), result


@pytest.mark.parametrize("raw", [
    b'{"event_id":"e1","customer_id":"c1","survey":"nps","score":7e0,"occurred_at":"2026-10-31T11:00:00Z"}',
    b'{"event_id":"e1","customer_id":"c1","survey":"nps","score":70e-1,"occurred_at":"2026-10-31T11:00:00Z"}',
    b'{"event_id":"e1","customer_id":"c1","survey":"nps","score":7.000,"occurred_at":"2026-10-31T11:00:00Z"}',
    b' {"event_id":"e1","customer_id":"c1","survey":"nps","score":7,"occurred_at":"2026-10-31T11:00:00Z"}\n',
])
def test_integer_valued_numbers_are_integers(raw: bytes) -> None:
    result = decode_survey(raw, b"c1", NOW)
    assert isinstance(result, SurveyResponse) and result.score == 7 and type(result.score) is int


def test_duplicate_keys_are_rejected_and_named_only_when_a_contract_field() -> None:
    """orjson would keep the last copy: 7, where a validator keeping the first saw 11."""
    raw = (b'{"event_id":"e1","customer_id":"c1","survey":"nps","score":11,"score":7,'
           b'"occurred_at":"2026-10-31T11:00:00Z"}')
    result = decode_survey(raw, b"c1", NOW)
    assert isinstance(result, Rejection) and result.code == E.DUPLICATE_KEY
    assert "'score'" in result.reason
    name = SECRET.encode()
    secret = orjson.dumps(survey())[:-1] + b',"' + name + b'":1,"' + name + b'":2}'
    result = decode_survey(secret, b"c1", NOW)
    assert isinstance(result, Rejection) and result.code == E.DUPLICATE_KEY
    assert SECRET not in result.reason and "a key" in result.reason


@pytest.mark.parametrize("decode", DECODERS, ids=lambda d: d.__name__)
def test_min_event_time_is_a_parameter(decode: Decoder) -> None:
    field = "updated_at" if decode is decode_profile else "occurred_at"

    def doc(at: int) -> dict[str, Any]:
        return BUILDERS[decode](**{field: format_rfc3339(at)})

    # the default: 2000-01-01T00:00:00Z
    assert format_rfc3339(DEFAULT_MIN_EVENT_MS) == "2000-01-01T00:00:00Z"
    assert code(decode, doc(DEFAULT_MIN_EVENT_MS)) is None
    assert code(decode, doc(DEFAULT_MIN_EVENT_MS - 1)) == E.TIMESTAMP_OUT_OF_RANGE
    for at, low, ok in [(DEFAULT_MIN_EVENT_MS - 1, DEFAULT_MIN_EVENT_MS, False), (0, 0, True),
                        (-1, 0, False), (MIN_MS, MIN_MS, True), (MIN_MS, -(10**30), True),
                        (NOW - 1000, NOW - 1000, True), (NOW - 1001, NOW - 1000, False)]:
        expected = None if ok else E.TIMESTAMP_OUT_OF_RANGE
        assert run_min(decode, doc(at), low) == expected, (at, low)
    # an instant before year 1 in UTC is out of range whatever the bound
    text = "0001-01-01T00:00:00+00:01"
    assert run_min(decode, BUILDERS[decode](**{field: text}), -(10**30)) == E.TIMESTAMP_OUT_OF_RANGE


def run_min(decode: Decoder, doc: Any, min_ms: int) -> E | None:
    result = decode(orjson.dumps(doc), b"c1", NOW, min_ms)  # type: ignore[call-arg]
    return result.code if isinstance(result, Rejection) else None


def test_a_clock_past_year_9999_still_gives_representable_instants() -> None:
    """With `now_ms` near the end of the range, the skew would reach past 9999-12-31: the
    representable range still bounds what is accepted."""
    now = MAX_MS - 60_000
    for text, expected in [("9999-12-31T23:59:59.999Z", None),
                           ("9999-12-31T23:59:00-00:01", E.FUTURE_TIMESTAMP),
                           ("9999-12-31T23:30:00-01:00", E.FUTURE_TIMESTAMP)]:
        assert code(S, survey(occurred_at=text), now=now) == expected, text


def test_size_limit_is_on_bytes() -> None:
    def padded(size: int, filler: str) -> bytes:
        base = len(orjson.dumps(survey(pad="")))
        many, rest = divmod(size - base, len(filler.encode()))
        raw = orjson.dumps(survey(pad=filler * many + "x" * rest))
        assert len(raw) == size
        return raw

    for filler in ("x", "é"):  # 1 and 2 bytes per character: the limit is bytes, not characters
        assert code(S, padded(MAX_VALUE_BYTES - 2, filler)) is None
        assert code(S, padded(MAX_VALUE_BYTES, filler)) is None
        assert code(S, padded(MAX_VALUE_BYTES + 2, filler)) == E.TOO_LARGE
    assert code(S, padded(MAX_VALUE_BYTES - 1, "x")) is None
    assert code(S, padded(MAX_VALUE_BYTES + 1, "x")) == E.TOO_LARGE
    assert code(S, b"x" * (10 * 1024 * 1024)) == E.TOO_LARGE


# -- timestamps --------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["2026-10-31T11:00:00Z", "2026-10-31T16:30:00+05:30", "2026-10-31T08:00:00-03:00",
                                  "2026-10-31t11:00:00z", "2026-10-31T11:00:00.000+00:00", "2026-10-31T11:00:00-00:00"])
def test_offsets_give_the_same_instant(text: str) -> None:
    r = decode_survey(orjson.dumps(survey(occurred_at=text)), b"c1", NOW)
    assert isinstance(r, SurveyResponse) and r.occurred_at == NOW - 3_600_000


@pytest.mark.parametrize("decode", DECODERS, ids=lambda d: d.__name__)
def test_future_skew_boundary(decode: Decoder) -> None:
    field = "updated_at" if decode is decode_profile else "occurred_at"
    for ahead, ok in [(0, True), (MAX_FUTURE_SKEW_MS - 1, True), (MAX_FUTURE_SKEW_MS, True),
                      (MAX_FUTURE_SKEW_MS + 1, False), (86_400_000, False)]:
        doc = BUILDERS[decode](**{field: format_rfc3339(NOW + ahead)})
        assert code(decode, doc) == (None if ok else E.FUTURE_TIMESTAMP), ahead
    # only the future is limited: old events are the windows' business (too_late), not the decoder's
    assert code(decode, BUILDERS[decode](**{field: format_rfc3339(NOW - 10 * 365 * 86_400_000)})) is None


def test_sub_millisecond_fraction_cannot_cross_the_skew_boundary() -> None:
    # 12:05:00.0009 floors to exactly now + 5 min: accepted
    assert code(S, survey(occurred_at="2026-10-31T12:05:00.0009Z")) is None


# -- decoded fields ----------------------------------------------------------------------------
def test_decoded_fields() -> None:
    r = run(S, survey(score=7.0, segment={"plan": "pro"}, touchpoint="web", comment="",
                      occurred_at="2026-10-31T08:00:00.5-03:00", unknown=1))
    assert r == SurveyResponse("e1", "c1", "nps", 7, NOW - 3_600_000 + 500, {"plan": "pro"}, "web", None, "", None)
    i = run(I, interaction(channel="phone", segment=None))
    assert i == Interaction("i1", "c1", NOW - 3_600_000, "call", None, "phone", None, {})
    p = run(P, owner(slack=None))
    assert p == CustomerProfile("c1", {"plan": "pro"}, NOW - 3_600_000, Owner("Ana", "ana@example.com", None))
    assert run(P, profile()).owner is None
    assert run(P, profile(owner={})).owner == Owner()
    assert run(P, profile()).value is None and run(P, profile(value=None)).value is None
    assert run(P, profile(value={})).value is None
    assert run(P, profile(value={"tier": None, "arr": None})).value is None
    assert run(P, profile(value={"tier": "strategic"})).value == {"tier": "strategic"}
    assert run(P, profile(value={"arr": 0, "currency": "BRL", "note": "x"})).value == {
        "arr": 0, "currency": "BRL"}
    assert run(P, profile(value={"tier": "low", "arr": 2500.5, "currency": "USD"})).value == {
        "tier": "low", "arr": 2500.5, "currency": "USD"}
    assert run(P, profile(value={"tier": "low", "currency": "USD"})).value == {
        "tier": "low", "currency": "USD"}


@pytest.mark.parametrize(("value", "reason"), [
    ({"tier": "gold"}, "'value.tier' must be strategic, high, standard or low"),
    ({"arr": -1, "currency": "EUR"}, "'value.arr' must be 0 or more"),
    ({"arr": 1}, "'value.arr' needs 'value.currency'"),
    ({"arr": 1, "currency": "eur"}, "'value.currency' must be three upper-case letters"),
    ({"arr": "1"}, "'value.arr' must be a number, got string"),
    ("x", "'value' must be an object, got string"),
])
def test_value_reasons_name_the_field(value: Any, reason: str) -> None:
    result = run(P, profile(value=value))
    assert isinstance(result, Rejection) and reason in result.reason


# -- reasons -----------------------------------------------------------------------------------
SECRET = "jane.doe@example.com"


@pytest.mark.parametrize("decode,doc", [
    (S, survey(comment=SECRET * 250)), (S, survey(event_id=SECRET * 10)), (S, survey(customer_id=SECRET),),
    (S, survey(occurred_at=SECRET)), (S, survey(occurred_at="2099" + SECRET)), (S, survey(survey=SECRET)),
    (S, survey(segment={"plan": SECRET * 10})), (S, survey(segment={SECRET: "x"})),
    (S, survey(segment={SECRET: 1})), (S, survey(touchpoint=SECRET * 4)),
    (I, interaction(kind=SECRET * 4)), (I, interaction(outcome="")),
    (P, owner(email=SECRET + " ")), (P, owner(name=SECRET * 10)), (P, profile(customer_id=SECRET)),
    (S, orjson.dumps(survey()).replace(b'"e1"', b'"' + SECRET.encode() + b'\xff"')),
    (S, orjson.dumps(survey()).replace(b'"e1"', b'"' + SECRET.encode())),
])
def test_reasons_never_quote_string_values(decode: Decoder, doc: Any) -> None:
    r = run(decode, doc, key=(SECRET + "!").encode())  # keys are not quoted either
    assert isinstance(r, Rejection) and SECRET not in r.reason and "jane" not in r.reason, r


# -- never raises ------------------------------------------------------------------------------
def assert_sane(result: Any) -> None:
    """A typed event or a rejection that is not the decoder's own failure."""
    if isinstance(result, Rejection):
        assert result.code != E.PROCESSING_ERROR, result
        assert isinstance(result.reason, str) and result.reason
    else:
        assert isinstance(result, (SurveyResponse, Interaction, CustomerProfile))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
FIELDS = ["event_id", "customer_id", "survey", "score", "occurred_at", "segment", "touchpoint", "channel",
          "comment", "interaction_id", "kind", "outcome", "owner", "updated_at"]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400), st.none() | st.binary(max_size=10))
def test_never_raises_on_arbitrary_bytes(raw: bytes, key: bytes | None) -> None:
    for decode in DECODERS:
        assert_sane(decode(raw, key, NOW))


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_never_raises_on_arbitrary_json(value: Any) -> None:
    raw = orjson.dumps(value)
    for decode in DECODERS:
        assert_sane(decode(raw, b"c1", NOW))


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=12), st.sampled_from(DECODERS))
def test_never_raises_on_documents_with_arbitrary_field_values(doc: dict[str, Any], decode: Decoder) -> None:
    raw = orjson.dumps(doc)
    result = decode(raw, b"c1", NOW)
    assert_sane(result)
    if decode is S:  # the built-in registry, however given, is the default
        for table in (scales(BUILTINS), MappingProxyType(scales(BUILTINS))):
            assert S(raw, b"c1", NOW, DEFAULT_MIN_EVENT_MS, table) == result


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(DECODERS), st.integers(0, 40), st.binary(min_size=1, max_size=4))
def test_never_raises_on_invalid_utf8(decode: Decoder, at: int, junk: bytes) -> None:
    raw = orjson.dumps(BUILDERS[decode](comment="abcdefghij" * 4, kind="call"))
    raw = raw[:at] + junk + raw[at:]
    result = decode(raw, b"c1", NOW)
    assert_sane(result)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        assert isinstance(result, Rejection) and result.code == E.NOT_JSON


@pytest.mark.parametrize("depth", [1, 100, 1023, 1024, 1025, 5000, 30_000])
@pytest.mark.parametrize("decode", DECODERS, ids=lambda d: d.__name__)
def test_never_raises_on_deep_nesting(decode: Decoder, depth: int) -> None:
    for opener, closer in ((b"[", b"]"), (b'{"a":', b"}")):
        nested = opener * depth + b"1" + closer * depth
        for raw in (nested, orjson.dumps(BUILDERS[decode]())[:-1] + b',"extra":' + nested + b"}"):
            result = decode(raw, b"c1", NOW)
            assert_sane(result)
            if len(raw) > MAX_VALUE_BYTES:
                assert isinstance(result, Rejection) and result.code == E.TOO_LARGE


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(DECODERS), st.sampled_from(FIELDS),
       st.one_of(st.integers(min_value=-(10**40), max_value=10**40).map(lambda n: str(n).encode()),
                 st.floats(allow_nan=False).map(lambda f: repr(f).encode().replace(b"inf", b"1e999")),
                 st.sampled_from([b"1e308", b"-1e308", b"1e-400", b"-0", b"-0.0", b"1E2", b"1" + b"0" * 5000,
                                  b"0.1e1", b"123456789012345678901234567890.0", b"-9223372036854775809",
                                  b"18446744073709551616", b"1e400"])))
def test_never_raises_on_huge_numbers(decode: Decoder, field: str, number: bytes) -> None:
    doc = orjson.dumps(BUILDERS[decode](**{field: "PLACEHOLDER"}))
    raw = doc.replace(b'"PLACEHOLDER"', number)
    assert_sane(decode(raw, b"c1", NOW))


@pytest.mark.parametrize("decode", DECODERS, ids=lambda d: d.__name__)
@pytest.mark.parametrize("raw", [None, "text", 42, bytearray(b"{}"), memoryview(b"{}")])
def test_never_raises_on_odd_argument_types(decode: Decoder, raw: Any) -> None:
    assert isinstance(decode(raw, b"c1", NOW), Rejection)


# -- valid documents decode to exactly their fields --------------------------------------------
#: What a one-line field may hold: anything but control characters (Cc) and the line and
#: paragraph separators (Zl, Zp); surrogates cannot be encoded.
LINE = st.characters(blacklist_categories=("Cc", "Zl", "Zp", "Cs"))
#: What free text (the comment) may hold: the same, and tab, LF and CR.
TEXT = LINE | st.sampled_from("\t\n\r")


def texts(low: int, high: int, alphabet: st.SearchStrategy[str] = LINE) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=low, max_size=high)


names = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True) | st.just("a" * 64)
segments = st.dictionaries(names, texts(1, 20) | st.just("v" * 128), max_size=16)
OFFSETS = st.sampled_from([None, 0, 330, -180, 60, -600, 845, 1439, -1439])


@st.composite
def timestamps(draw: st.DrawFn) -> tuple[str, int]:
    """A valid RFC 3339 text (in any offset) and its epoch ms, at most 5 minutes after NOW."""
    ms = draw(st.integers(NOW - 5 * 365 * 86_400_000, NOW + MAX_FUTURE_SKEW_MS))
    offset = draw(OFFSETS)
    frac_digits = draw(st.sampled_from([0, 1, 2, 3, 6, 9]))
    if frac_digits < 3:
        ms -= ms % 10 ** (3 - frac_digits)
    utc = format_rfc3339(ms - ms % 1000)
    local_ms = ms - ms % 1000 + (offset or 0) * 60_000
    text = format_rfc3339(local_ms)[:19]
    if frac_digits:
        text += "." + (f"{ms % 1000:03d}" + "123456")[:frac_digits]
    if offset is None:
        text += draw(st.sampled_from("Zz"))
    else:
        oh, om = divmod(abs(offset), 60)
        text += f"{'+' if offset >= 0 else '-'}{oh:02d}:{om:02d}"
    if draw(st.booleans()):
        text = text[:10] + "t" + text[11:]
    assert utc and parse_rfc3339(text) == ms
    return text, ms


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """DROP (absent), None (null) or a value."""
    return st.one_of(st.just(DROP), st.none(), strategy)


#: Program ids, the longest and some that look like the built-ins' among them.
program_ids = st.from_regex(r"[a-z][a-z0-9_-]{0,20}", fullmatch=True) | st.sampled_from(
    ["csat-delivery", "ces-checkout", "nps2", "npsx", "csat_app", "c", "a" * 64])
#: Scales as the registry allows them: nps always 0..10; csat and ces any two or more points
#: within -100..100, CSAT 1..10 and CES 1..7 among them.
program_scales = st.sampled_from([(1, 10), (1, 7), (0, 100), (-100, 100), (-3, -2), (0, 1)]) | \
    st.tuples(st.integers(-100, 99), st.integers(1, 200)).map(lambda t: (t[0], min(100, t[0] + t[1])))


@st.composite
def programs(draw: st.DrawFn) -> Any:
    """One program as a registry file would define it (its ranges the top point)."""
    metric = draw(st.sampled_from(METRICS))
    low, high = NPS_SCALE if metric == "nps" else draw(program_scales)
    top = [high, high]
    return define(draw(program_ids), metric, scale=[low, high],
                  satisfied=top if metric == "csat" else None,
                  high_effort=top if metric == "ces" else None)


@st.composite
def registries(draw: st.DrawFn) -> dict[str, Any] | None:
    """`scales` of a registry: the built-ins (None, the default, half of the time) or the
    built-ins and up to 12 programs of arbitrary metrics and scales."""
    if draw(st.booleans()):
        return None
    drawn = draw(st.lists(programs(), max_size=12, unique_by=lambda p: p.id))
    kept = {p.id: p for p in BUILTINS}  # a registry file may redefine a built-in's ranges only
    kept.update({p.id: p for p in drawn if p.id not in BUILTINS})
    return scales(Registry(kept.values()))


@st.composite
def valid_surveys(draw: st.DrawFn) -> tuple[dict[str, Any], SurveyResponse, Any]:
    """A valid response to a program of a registry, its record, and the registry's scales."""
    table = draw(registries())
    program = draw(st.sampled_from(sorted(BUILTIN_SCALES if table is None else table)))
    kind, low, high = (BUILTIN_SCALES if table is None else table)[program]
    score = draw(st.integers(low, high))
    text, ms = draw(timestamps())
    doc = survey(event_id=draw(texts(1, 128)), customer_id=draw(texts(1, 128)), survey=program,
                 score=float(score) if draw(st.booleans()) else score, occurred_at=text,
                 segment=draw(optional(segments)), touchpoint=draw(optional(texts(1, 64))),
                 channel=draw(optional(texts(1, 64))), comment=draw(optional(texts(0, 4000, TEXT))),
                 interaction_id=draw(optional(texts(1, 128))), **draw(st.dictionaries(
                     st.sampled_from(["extra", "version", "Score"]), json_values, max_size=2)))
    get = doc.get  # absent and null are the same
    return doc, SurveyResponse(doc["event_id"], doc["customer_id"], kind, score, ms, get("segment") or {},
                               get("touchpoint"), get("channel"), get("comment"), get("interaction_id"),
                               program), table


@st.composite
def valid_interactions(draw: st.DrawFn) -> tuple[dict[str, Any], Interaction]:
    text, ms = draw(timestamps())
    doc = interaction(event_id=draw(texts(1, 128)), customer_id=draw(texts(1, 128)), occurred_at=text,
                      kind=draw(texts(1, 64)), touchpoint=draw(optional(texts(1, 64))),
                      channel=draw(optional(texts(1, 64))), outcome=draw(optional(texts(1, 64))),
                      segment=draw(optional(segments)))
    get = doc.get
    return doc, Interaction(doc["event_id"], doc["customer_id"], ms, doc["kind"], get("touchpoint"),
                            get("channel"), get("outcome"), get("segment") or {})


emails = st.builds(lambda a, b: f"{a}@{b}",
                   st.from_regex(r"[^@\x00-\x20\x7f-\x9f\u2028\u2029]{1,60}", fullmatch=True),
                   st.from_regex(r"[^@\x00-\x20\x7f-\x9f\u2028\u2029]{1,60}", fullmatch=True))


@st.composite
def valid_profiles(draw: st.DrawFn) -> tuple[dict[str, Any], CustomerProfile]:
    text, ms = draw(timestamps())
    owner_doc = draw(optional(st.fixed_dictionaries({}, optional={
        "name": st.none() | texts(1, 128), "email": st.none() | emails, "slack": st.none() | texts(1, 128)})))
    doc = profile(customer_id=draw(texts(1, 128)), segment=draw(segments), updated_at=text, owner=owner_doc)
    o = doc.get("owner")
    return doc, CustomerProfile(doc["customer_id"], doc["segment"], ms,
                                None if o is None else Owner(o.get("name"), o.get("email"), o.get("slack")))


@pytest.mark.parametrize("decode,strategy", [(S, valid_surveys()), (I, valid_interactions()),
                                             (P, valid_profiles())], ids=["survey", "interaction", "profile"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_valid_documents_decode_to_their_fields(decode: Decoder, strategy: Any, data: st.DataObject) -> None:
    doc, expected, *table = data.draw(strategy)  # a survey's: the registry's scales
    raw = orjson.dumps(doc)
    assume(len(raw) <= MAX_VALUE_BYTES)
    result = decode(raw, doc["customer_id"].encode(), NOW, DEFAULT_MIN_EVENT_MS, *table)
    assert result == expected
    assert type(getattr(result, "score", 0)) is int
    if isinstance(result, SurveyResponse):  # the metric as the rest of cxstream knows it
        assert result.survey in METRICS and type(result.program) is str


# -- programs: the registry says which surveys there are and their scales ----------------------
def answer(program: Any, score: Any) -> bytes:
    """The response's JSON text; an integer score written as is (beyond 64 bits too)."""
    if type(score) is not int:
        return orjson.dumps(survey(survey=program, score=score))
    return orjson.dumps(survey(survey=program, score="SCORE")).replace(b'"SCORE"', str(score).encode())


def listed(known: Any) -> bool:
    """Whether an unknown_survey reason lists the known ids (few and short), or counts them."""
    return len(known) <= 8 and len(", ".join(known)) <= 120


@settings(max_examples=500, deadline=None)
@given(registries(), program_ids | st.sampled_from(["nps", "csat", "ces"]) | texts(0, 70),
       st.integers(-150, 150) | st.integers(-(10**40), 10**40))
def test_the_registry_decides_the_program_and_its_scale(table: Any, program: str, score: int) -> None:
    """Against the oracle, the registry itself: a known program's in-scale answer decodes with
    the program's metric and id; off its scale, score_out_of_range naming the program and the
    scale; an unknown program, unknown_survey saying how many (and, if few, which) there are."""
    known = BUILTIN_SCALES if table is None else table
    result = S(answer(program, score), b"c1", NOW, DEFAULT_MIN_EVENT_MS, table)
    if program not in known:
        assert isinstance(result, Rejection) and result.code == E.UNKNOWN_SURVEY, result
        ids = sorted(known)
        which = f"{len(ids)} known: {', '.join(ids)}" if listed(ids) else f"{len(ids)} programs known"
        assert which in result.reason and len(result.reason) < 300
        return
    metric, low, high = known[program]
    if not low <= score <= high:
        assert isinstance(result, Rejection) and result.code == E.SCORE_OUT_OF_RANGE, result
        assert f"{program} answers are integers {low}..{high}" in result.reason
        assert (f"score {score} " in result.reason) == (abs(score) < 10**6)
        return
    assert result == SurveyResponse("e1", "c1", metric, score, NOW - 3_600_000, {}, None, None, None, None,
                                    program)
    assert result.survey == metric and result.program == program


REGISTRY = Registry([*BUILTINS, define("csat-delivery", "csat", scale=[1, 10], satisfied=[8, 10]),
                     define("ces-checkout", "ces", scale=[1, 7]), define("rnps", "nps")])


@pytest.mark.parametrize("program,score,expected", [
    ("csat-delivery", 1, "csat"), ("csat-delivery", 10, "csat"), ("csat-delivery", 9.0, "csat"),
    ("csat-delivery", 0, E.SCORE_OUT_OF_RANGE), ("csat-delivery", 11, E.SCORE_OUT_OF_RANGE),
    ("ces-checkout", 1, "ces"), ("ces-checkout", 7, "ces"), ("ces-checkout", 8, E.SCORE_OUT_OF_RANGE),
    ("rnps", 0, "nps"), ("rnps", 11, E.SCORE_OUT_OF_RANGE),
    ("csat", 5, "csat"), ("csat", 6, E.SCORE_OUT_OF_RANGE),  # the built-ins keep their scales
    ("ces", 7, E.SCORE_OUT_OF_RANGE), ("nps", 10, "nps"),
    ("csat-app", 3, E.UNKNOWN_SURVEY), ("CSAT-delivery", 3, E.UNKNOWN_SURVEY),
    ("csat-delivery ", 3, E.UNKNOWN_SURVEY), ("csat-delivery\n", 3, E.UNKNOWN_SURVEY),
    ("csat-delivery", 11.5, E.WRONG_TYPE), ("csat-delivery", "9", E.WRONG_TYPE),
])
def test_programs_of_a_registry(program: str, score: Any, expected: Any) -> None:
    result = S(answer(program, score), b"c1", NOW, DEFAULT_MIN_EVENT_MS, scales(REGISTRY))
    if isinstance(expected, E):
        assert isinstance(result, Rejection) and result.code == expected, result
        assert len(result.reason) < 300
    else:
        assert isinstance(result, SurveyResponse), result
        assert (result.survey, result.program, result.score) == (expected, program, int(score))
    # without the registry, only the built-ins are known
    default = S(answer(program, score), b"c1", NOW)
    if program not in BUILTINS:
        assert isinstance(default, Rejection) and default.code in (E.UNKNOWN_SURVEY, E.WRONG_TYPE)


def test_reasons_name_the_program_and_its_scale() -> None:
    off = S(answer("csat-delivery", 11), b"c1", NOW, DEFAULT_MIN_EVENT_MS, scales(REGISTRY))
    assert isinstance(off, Rejection)
    assert "score 11" in off.reason and "csat-delivery answers are integers 1..10" in off.reason
    unknown = S(answer("csat-app", 3), b"c1", NOW, DEFAULT_MIN_EVENT_MS, scales(REGISTRY))
    assert isinstance(unknown, Rejection) and "CXSTREAM_SURVEYS" in unknown.reason
    assert "6 known: ces, ces-checkout, csat, csat-delivery, nps, rnps" in unknown.reason
    not_an_id = S(answer("CSAT app", 3), b"c1", NOW)
    assert isinstance(not_an_id, Rejection) and "not a survey program id" in not_an_id.reason
    assert "3 known: ces, csat, nps" in not_an_id.reason


@pytest.mark.parametrize("value", ["janedoe", "jane-doe-1985", "x" * 64, "Jane Doe", SECRET, "é" * 70])
def test_unknown_survey_reasons_never_quote_the_value(value: str) -> None:
    many = scales(Registry([*BUILTINS, *(define("p" + f"{i:02d}" * 31, "csat") for i in range(47))]))
    for table in (None, scales(REGISTRY), many):
        result = S(answer(value, 3), b"c1", NOW, DEFAULT_MIN_EVENT_MS, table)
        assert isinstance(result, Rejection) and result.code == E.UNKNOWN_SURVEY
        assert value not in result.reason and "jane" not in result.reason.lower()
        assert len(result.reason) < 300  # 50 programs of 63 characters: counted, not listed
    assert "50 programs known" in S(answer("x", 3), b"c1", NOW, DEFAULT_MIN_EVENT_MS, many).reason


def test_the_decoder_knows_what_the_registry_knows() -> None:
    """The compiled decoder does not import `programs`: the id rule is one, in
    `fieldrules`, and the built-in scales are kept in `model` as well."""
    assert PROGRAM_ID is fieldrules.PROGRAM_ID
    assert BUILTIN_SCALES == scales(BUILTINS)


def test_a_built_in_answer_holds_the_metric_string_itself() -> None:
    """Not a copy per response: the state keeps one string for every built-in answer."""
    result = S(answer("nps", 9), b"c1", NOW)
    assert isinstance(result, SurveyResponse) and result.program is result.survey == "nps"


# -- the remembered dimension names --------------------------------------------------------------
@pytest.mark.parametrize("decode", DECODERS, ids=lambda d: d.__name__)
def test_remembered_dimension_names_change_no_result(decode: Decoder, monkeypatch: pytest.MonkeyPatch) -> None:
    """Valid names are remembered (up to a bound) so the regex runs less; what is accepted
    is the same before, while and after the memory fills up."""
    monkeypatch.setattr(fieldrules, "_GOOD_NAMES", set())
    monkeypatch.setattr(fieldrules, "_GOOD_NAMES_MAX", 3)
    names = ["plan", "region", "tier", "plan_2", "a" * 64, "Plan", "2plan", "a" * 65, "pl-an", "plan\n", ""]
    for _ in range(2):  # cold, then with the memory full
        for name in names:
            expected = None if name in ("plan", "region", "tier", "plan_2", "a" * 64) else E.INVALID_VALUE
            assert code(decode, BUILDERS[decode](segment={name: "x"})) == expected, name
    assert len(fieldrules._GOOD_NAMES) == 3
