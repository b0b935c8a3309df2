"""Every validation rule maps to its dead-letter code, and no input makes the decoder raise."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxstream.core.decode import (
    MAX_VALUE_BYTES,
    decode_interaction,
    decode_profile,
    decode_survey,
)
from cxstream.core.errors import ErrorCode as E
from cxstream.core.errors import Rejection
from cxstream.core.model import Interaction, SurveyResponse
from cxstream.core.timefmt import format_rfc3339, parse_rfc3339

NOW = parse_rfc3339("2026-10-31T12:00:00Z")
assert NOW is not None


def survey(**over: Any) -> dict[str, Any]:
    doc = {"event_id": "e1", "customer_id": "c1", "survey": "nps", "score": 9,
           "occurred_at": "2026-10-31T11:00:00Z"}
    doc.update(over)
    return {k: v for k, v in doc.items() if v is not ...}


def code(doc: Any, key: bytes | None = b"c1", decode: Any = decode_survey) -> E | None:
    raw = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    result = decode(raw, key, NOW)
    return result.code if isinstance(result, Rejection) else None


@pytest.mark.parametrize("doc,expected", [
    (b"\xff\xfe", E.NOT_JSON),
    (b"", E.NOT_JSON),
    (b'{"a": NaN}', E.NOT_JSON),
    (b'{"a": Infinity}', E.NOT_JSON),
    (b"[" * 2000 + b"]" * 2000, E.NOT_JSON),
    (b"42", E.NOT_OBJECT),
    (b'"text"', E.NOT_OBJECT),
    (b"null", E.NOT_OBJECT),
    (survey(event_id=...), E.MISSING_FIELD),
    (survey(customer_id=...), E.MISSING_FIELD),
    (survey(survey=...), E.MISSING_FIELD),
    (survey(score=...), E.MISSING_FIELD),
    (survey(occurred_at=...), E.MISSING_FIELD),
    (survey(event_id=None), E.MISSING_FIELD),
    (survey(event_id=5), E.WRONG_TYPE),
    (survey(score="9"), E.WRONG_TYPE),
    (survey(score=True), E.WRONG_TYPE),
    (survey(score=8.5), E.WRONG_TYPE),
    (orjson.dumps(survey(score=0)).replace(b'"score":0', b'"score":1' + b"0" * 30), E.SCORE_OUT_OF_RANGE),
    (orjson.dumps(survey(score=0)).replace(b'"score":0', b'"score":1e400'), E.NOT_JSON),
    (survey(survey=1), E.WRONG_TYPE),
    (survey(segment=["plan"]), E.WRONG_TYPE),
    (survey(segment={"plan": 1}), E.WRONG_TYPE),
    (survey(touchpoint=3), E.WRONG_TYPE),
    (survey(event_id=""), E.INVALID_VALUE),
    (survey(event_id="x" * 129), E.INVALID_VALUE),
    (survey(customer_id="x" * 129), E.INVALID_VALUE),
    (survey(channel="x" * 65), E.INVALID_VALUE),
    (survey(comment="x" * 4001), E.INVALID_VALUE),
    (survey(segment={"Plan": "pro"}), E.INVALID_VALUE),
    (survey(segment={"plan": ""}), E.INVALID_VALUE),
    (survey(segment={f"d{i}": "v" for i in range(17)}), E.INVALID_VALUE),
    (survey(survey="NPS"), E.UNKNOWN_SURVEY),
    (survey(survey="ces2"), E.UNKNOWN_SURVEY),
    (survey(score=-1), E.SCORE_OUT_OF_RANGE),
    (survey(score=11), E.SCORE_OUT_OF_RANGE),
    (survey(survey="csat", score=0), E.SCORE_OUT_OF_RANGE),
    (survey(survey="csat", score=6), E.SCORE_OUT_OF_RANGE),
    (survey(survey="ces", score=0), E.SCORE_OUT_OF_RANGE),
    (survey(survey="ces", score=6), E.SCORE_OUT_OF_RANGE),
    (survey(occurred_at="2026-10-31T11:00:00"), E.BAD_TIMESTAMP),
    (survey(occurred_at="2026-10-31"), E.BAD_TIMESTAMP),
    (survey(occurred_at="2026-02-30T00:00:00Z"), E.BAD_TIMESTAMP),
    (survey(occurred_at="2026-10-31T12:05:00.001Z"), E.FUTURE_TIMESTAMP),
    (survey(occurred_at="2026-10-31T12:06:00+00:00"), E.FUTURE_TIMESTAMP),
])
def test_each_rule_has_its_code(doc: Any, expected: E) -> None:
    assert code(doc) == expected


@pytest.mark.parametrize("doc", [
    survey(score=0), survey(score=10), survey(score=7.0),
    survey(survey="csat", score=1), survey(survey="csat", score=5),
    survey(survey="ces", score=1), survey(survey="ces", score=5),
    survey(event_id="x" * 128, customer_id="c1"), survey(comment=""), survey(comment="x" * 4000),
    survey(occurred_at="2026-10-31T12:05:00Z"),  # exactly 5 minutes ahead is allowed
    survey(occurred_at="2026-10-31T16:30:00+05:30"), survey(occurred_at="2026-10-31T08:00:00-03:00"),
    survey(touchpoint=None, channel=None, comment=None, segment=None),
    survey(segment={f"d{i}": "v" for i in range(16)}, unknown_field={"nested": [1, 2]}),
])
def test_boundaries_are_accepted(doc: dict[str, Any]) -> None:
    assert code(doc) is None


def test_size_limit_is_checked_on_bytes() -> None:
    filler = survey(pad="")
    room = MAX_VALUE_BYTES - len(orjson.dumps(filler))
    assert code(survey(pad="x" * room)) is None
    assert code(survey(pad="x" * (room + 1))) == E.TOO_LARGE
    assert code(b"x" * (10 * 1024 * 1024)) == E.TOO_LARGE


def test_key_must_be_the_customer_id() -> None:
    assert code(survey(), key=b"c2") == E.KEY_MISMATCH
    assert code(survey(), key=None) == E.KEY_MISMATCH
    assert code(survey(customer_id="ção"), key="ção".encode()) is None


def test_decoded_fields() -> None:
    r = decode_survey(orjson.dumps(survey(score=7.0, segment={"plan": "pro"}, touchpoint="web",
                                          occurred_at="2026-10-31T08:00:00.5-03:00")), b"c1", NOW)
    assert r == SurveyResponse("e1", "c1", "nps", 7, parse_rfc3339("2026-10-31T11:00:00.500Z"),
                               {"plan": "pro"}, "web", None, None, None)
    i = decode_interaction(orjson.dumps({"event_id": "i", "customer_id": "c1", "kind": "call",
                                         "occurred_at": "2026-10-31T11:00:00Z"}), b"c1", NOW)
    assert isinstance(i, Interaction) and i.kind == "call"
    p = decode_profile(orjson.dumps({"customer_id": "c1", "segment": {"plan": "pro"},
                                     "updated_at": "2026-10-31T11:00:00Z",
                                     "owner": {"name": "Ana", "email": "ana@example.com"}}), b"c1", NOW)
    assert not isinstance(p, Rejection) and p.owner is not None and p.owner.email == "ana@example.com"
    assert code({"customer_id": "c1", "segment": {}, "updated_at": "2026-10-31T11:00:00Z",
                 "owner": {"email": "not-an-address"}}, decode=decode_profile) == E.INVALID_VALUE
    assert code({"event_id": "i", "customer_id": "c1", "occurred_at": "2026-10-31T11:00:00Z"},
                decode=decode_interaction) == E.MISSING_FIELD


def test_reasons_never_quote_string_values() -> None:
    secret = "jane.doe@example.com"
    for doc in (survey(comment=secret * 250), survey(event_id=secret * 10),
                survey(occurred_at=secret), survey(segment={"plan": secret * 10})):
        r = decode_survey(orjson.dumps(doc), b"c1", NOW)
        assert isinstance(r, Rejection) and secret not in r.reason


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
DECODERS = (decode_survey, decode_interaction, decode_profile)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.none() | st.binary(max_size=10))
def test_never_raises_on_random_bytes(raw: bytes, key: bytes | None) -> None:
    for decode in DECODERS:
        assert isinstance(decode(raw, key, NOW), Rejection) or raw.strip()


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_never_raises_on_random_json(value: Any) -> None:
    try:
        raw = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return  # e.g. integers beyond 64 bits: orjson cannot even write them
    for decode in DECODERS:
        decode(raw, b"c1", NOW)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["event_id", "customer_id", "survey", "score", "occurred_at",
                                        "segment", "comment", "kind", "owner", "updated_at"]),
                       json_values, max_size=10))
def test_never_raises_on_documents_with_random_field_values(doc: dict[str, Any]) -> None:
    try:
        raw = orjson.dumps(doc)
    except (TypeError, orjson.JSONEncodeError):
        return
    for decode in DECODERS:
        result = decode(raw, b"c1", NOW)
        assert isinstance(result, Rejection) or result.customer_id == "c1"


def test_huge_numbers_and_deep_nesting() -> None:
    assert code(b'{"score": 1' + b"0" * 5000 + b"}") is not None
    assert code(survey(score=1e308)) == E.WRONG_TYPE or code(survey(score=1e308)) == E.SCORE_OUT_OF_RANGE
    deep: Any = "x"
    for _ in range(200):
        deep = {"a": deep}
    assert code(orjson.dumps(survey(extra=deep))) is None  # unknown fields are allowed


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-2_000_000_000_000, max_value=4_000_000_000_000))
def test_timestamp_round_trip(ms: int) -> None:
    assert parse_rfc3339(format_rfc3339(ms)) == ms


@pytest.mark.parametrize("text,expected", [
    ("1970-01-01T00:00:00Z", 0),
    ("1970-01-01T01:00:00+01:00", 0),
    ("1969-12-31T21:00:00-03:00", 0),
    ("1970-01-01T00:00:00.0019Z", 1),
    ("2024-02-29T00:00:00Z", 1_709_164_800_000),
])
def test_timestamps(text: str, expected: int) -> None:
    assert parse_rfc3339(text) == expected


@pytest.mark.parametrize("text", ["2023-02-29T00:00:00Z", "2026-10-31T24:00:00Z", "2026-10-31T00:60:00Z",
                                  "2026-10-31T00:00:60Z", "2026-10-31T00:00:00+24:00", "2026-10-31T00:00Z",
                                  "2026-10-31T00:00:00.Z", " 2026-10-31T00:00:00Z"])
def test_invalid_timestamps(text: str) -> None:
    assert parse_rfc3339(text) is None
