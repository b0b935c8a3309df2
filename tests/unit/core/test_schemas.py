"""The JSON Schemas are the contracts: the decoder accepts exactly what they accept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from cxstream.core.decode import decode_interaction, decode_profile, decode_survey
from cxstream.core.errors import ErrorCode, Rejection

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"
NOW = 1_900_000_000_000  # far ahead of every generated timestamp: "future" is tested elsewhere


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


CONTRACTS: dict[str, tuple[Draft202012Validator, Callable[..., Any]]] = {
    "survey-response": (validator("survey-response"), decode_survey),
    "interaction": (validator("interaction"), decode_interaction),
    "customer-profile": (validator("customer-profile"), decode_profile),
}


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.schema.json")), ids=lambda p: p.name)
def test_schema_is_valid_2020_12_with_examples(path: Path) -> None:
    schema = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"].endswith("2020-12/schema") and schema["$id"] and schema["examples"]
    v = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    for example in schema["examples"]:
        assert not list(v.iter_errors(example)), example


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_examples_are_accepted_by_the_decoder(name: str) -> None:
    v, decode = CONTRACTS[name]
    for example in v.schema["examples"]:
        result = decode(orjson.dumps(example), example["customer_id"].encode(), NOW)
        assert not isinstance(result, Rejection), result


def test_dead_letter_schema_lists_exactly_the_error_codes() -> None:
    schema = json.loads((SCHEMAS / "dead-letter.schema.json").read_text())
    assert schema["properties"]["error_code"]["enum"] == [c.value for c in ErrorCode]


# -- agreement, on generated documents --------------------------------------------------------
timestamps = st.sampled_from([
    "2026-10-31T00:00:00Z", "2026-10-31T23:59:59.999+05:30", "2026-10-31t00:00:00z",
    "2026-02-29T00:00:00Z", "2024-02-29T12:00:00-03:00", "2026-13-01T00:00:00Z",
    "2026-10-31 00:00:00Z", "2026-10-31T00:00:00", "2026-10-31T24:00:00Z", "2026-10-31T00:00:60Z",
    "31/10/2026", "", "2026-10-31T00:00:00+25:00",
])
texts = st.one_of(st.text(max_size=6), st.text(min_size=60, max_size=140), st.just(""))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 14), st.floats(allow_nan=False, allow_infinity=False, width=32),
                    st.just(7.0), texts)
names = st.one_of(st.sampled_from(["plan", "region", "value_tier", "Plan", "1x", "a-b", ""]), st.text(max_size=5))
segments = st.one_of(st.none(), scalars, st.dictionaries(names, st.one_of(texts, scalars), max_size=18))


def field_values(name: str) -> st.SearchStrategy[Any]:
    if name in ("occurred_at", "updated_at"):
        return st.one_of(timestamps, scalars)
    if name == "survey":
        return st.one_of(st.sampled_from(["nps", "csat", "ces", "NPS", "other"]), scalars)
    if name == "score":
        return st.one_of(st.integers(-2, 12), st.just(7.0), st.just(7.5), st.booleans(), st.just("7"))
    if name == "segment":
        return segments
    if name == "owner":
        return st.one_of(st.none(), scalars, st.fixed_dictionaries({}, optional={
            "name": st.one_of(texts, scalars), "email": st.one_of(st.just("a@b.c"), st.just("nope"), texts, scalars),
            "slack": st.one_of(texts, scalars)}))
    if name == "comment":
        return st.one_of(st.none(), st.text(max_size=5), st.text(min_size=3990, max_size=4010), scalars)
    return st.one_of(st.sampled_from(["ok", "x" * 128, "x" * 129, "y" * 64, "y" * 65]), scalars)


FIELDS = {
    "survey-response": ["event_id", "customer_id", "survey", "score", "occurred_at", "segment",
                        "touchpoint", "channel", "comment", "interaction_id", "extra"],
    "interaction": ["event_id", "customer_id", "occurred_at", "kind", "touchpoint", "channel",
                    "outcome", "segment", "extra"],
    "customer-profile": ["customer_id", "segment", "updated_at", "owner", "extra"],
}


@st.composite
def documents(draw: st.DrawFn, name: str) -> dict[str, Any]:
    v = CONTRACTS[name][0]
    base = dict(draw(st.sampled_from(v.schema["examples"])))
    for field in draw(st.lists(st.sampled_from(FIELDS[name]), max_size=3, unique=True)):
        if draw(st.booleans()) and field in base:
            del base[field]
        else:
            base[field] = draw(field_values(field))
    return base


@pytest.mark.parametrize("name", sorted(CONTRACTS))
@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_decoder_accepts_exactly_what_the_schema_accepts(name: str, data: st.DataObject) -> None:
    v, decode = CONTRACTS[name]
    doc = data.draw(documents(name))
    schema_ok = v.is_valid(doc)
    cid = doc.get("customer_id")
    key = cid.encode() if isinstance(cid, str) else None
    result = decode(orjson.dumps(doc), key, NOW)
    decoder_ok = not isinstance(result, Rejection)
    if len(orjson.dumps(doc)) > 65_536:
        assert not decoder_ok
        return
    assert decoder_ok == schema_ok, (doc, result, [e.message for e in v.iter_errors(doc)])
