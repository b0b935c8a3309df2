"""The JSON Schemas are the contracts: valid 2020-12 schemas with valid examples, and the
decoder accepts exactly what they accept (and names the same rule when it rejects). For
survey responses, what a schema cannot know is added: the registry (here the example one,
deploy/surveys.example.toml) defines which programs `survey` may name and their scales."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, ValidationError

from cxstream.config.surveys import registry
from cxstream.core.deadletter import MAX_KEY_BYTES, MAX_PAYLOAD_BYTES, dead_letter
from cxstream.core.decode import (
    DEFAULT_MIN_EVENT_MS,
    MAX_VALUE_BYTES,
    decode_interaction,
    decode_profile,
    decode_survey,
)
from cxstream.core.errors import ErrorCode as E
from cxstream.core.errors import Rejection
from cxstream.core.fieldrules import LABEL_MAX
from cxstream.core.programs import BUILTINS, PROGRAM_ID, scales
from cxstream.core.timefmt import MAX_MS, MIN_MS, format_rfc3339

ROOT = Path(__file__).resolve().parents[3]
SCHEMAS = ROOT / "schemas"
ALL_SCHEMAS = sorted(SCHEMAS.glob("*.schema.json"))
INPUTS = ("survey-response", "interaction", "customer-profile")
NOW = MAX_MS + 2 * 86_400_000  # no generated timestamp is in the future: that rule is tested elsewhere
FORMATS = Draft202012Validator.FORMAT_CHECKER


def load(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text())


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load(name), format_checker=FORMATS)


#: The programs of the example registry (the built-ins, CSAT 1..10, CES 1..7, ...).
SCALES = scales(registry(ROOT / "deploy" / "surveys.example.toml", 50))
assert set(BUILTINS.ids) < set(SCALES) and SCALES["csat-delivery"] == ("csat", 1, 10)


def decode_registered(raw: Any, key: bytes | None, now_ms: int,
                      min_ms: int = DEFAULT_MIN_EVENT_MS) -> Any:
    """The decoder of a worker whose registry is the example one."""
    return decode_survey(raw, key, now_ms, min_ms, SCALES)


CONTRACTS: dict[str, tuple[Draft202012Validator, Callable[..., Any]]] = {
    "survey-response": (validator("survey-response"), decode_registered),
    "interaction": (validator("interaction"), decode_interaction),
    "customer-profile": (validator("customer-profile"), decode_profile),
}


# -- the schemas themselves --------------------------------------------------------------------
@pytest.mark.parametrize("path", ALL_SCHEMAS, ids=lambda p: p.name)
def test_schema_is_valid_2020_12_with_valid_examples(path: Path) -> None:
    schema = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("/" + path.name)
    assert schema["title"] and schema["description"] and schema["examples"]
    v = Draft202012Validator(schema, format_checker=FORMATS)
    for example in schema["examples"]:
        assert not [e.message for e in v.iter_errors(example)], example


@pytest.mark.parametrize("name", INPUTS + ("dead-letter",))
def test_our_schemas_are_self_contained(name: str) -> None:
    text = (SCHEMAS / f"{name}.schema.json").read_text()
    refs = re.findall(r'"\$ref": "([^"]*)"', text)
    assert all(ref.startswith("#/$defs/") for ref in refs)
    defs = json.loads(text)["$defs"]
    assert all(ref.removeprefix("#/$defs/") in defs for ref in refs)


@pytest.mark.parametrize("name", INPUTS)
def test_input_schemas_allow_unknown_properties_and_say_so(name: str) -> None:
    schema = load(name)
    assert "additionalProperties" not in schema and "unevaluatedProperties" not in schema
    assert "Unknown extra properties are allowed" in schema["description"]
    assert "key_mismatch" in schema["description"]
    assert validator(name).is_valid({**schema["examples"][0], "added_in_a_later_version": {"x": [1]}})


def test_format_checking_really_checks_date_time_and_email() -> None:
    # Without the rfc3339-validator package, jsonschema silently skips date-time: the
    # agreement tests below would then prove much less than they claim.
    assert "date-time" in FORMATS.checkers and "email" in FORMATS.checkers
    v = Draft202012Validator({"format": "date-time"}, format_checker=FORMATS)
    assert v.is_valid("2024-02-29T00:00:00Z") and not v.is_valid("2026-02-30T00:00:00Z")


def test_the_schema_itself_checks_the_score_range() -> None:
    """For the built-in programs, exactly as strictly as before programs existed."""
    v = validator("survey-response")
    base = {"event_id": "e", "customer_id": "c", "occurred_at": "2026-10-31T00:00:00Z"}
    for survey, ok, bad in (("nps", (0, 10), (-1, 11)), ("csat", (1, 5), (0, 6)), ("ces", (1, 5), (0, 6))):
        for score in ok:
            assert v.is_valid({**base, "survey": survey, "score": score})
        for score in bad:
            errors = list(v.iter_errors({**base, "survey": survey, "score": score}))
            assert errors and all(list(e.absolute_path) == ["score"] for e in errors)


def test_survey_is_any_program_id_whose_scale_the_worker_checks() -> None:
    """The schema takes every program id (it cannot know the registry) with any integer
    score; a string that is not an id it refuses, at `survey`."""
    prop = load("survey-response")["properties"]["survey"]
    assert prop["pattern"] == f"^{PROGRAM_ID.pattern}$" and prop["maxLength"] == LABEL_MAX
    v = validator("survey-response")
    base = {"event_id": "e", "customer_id": "c", "occurred_at": "2026-10-31T00:00:00Z"}
    for survey in ("csat-delivery", "ces_checkout", "x", "a" * 64, "npsx", "rnps"):
        for score in (-1000, 0, 11, 1000):
            assert v.is_valid({**base, "survey": survey, "score": score})
    for survey in ("", "a" * 65, "NPS", "nps ", "nps\n", "1nps", "-x", "csat/delivery", "a:b", "é"):
        errors = list(v.iter_errors({**base, "survey": survey, "score": 3}))
        assert errors and all(list(e.absolute_path) == ["survey"] for e in errors), survey


# -- examples, dead letters, README ------------------------------------------------------------
@pytest.mark.parametrize("name", INPUTS)
def test_examples_are_accepted_by_the_decoder(name: str) -> None:
    v, decode = CONTRACTS[name]
    for example in v.schema["examples"]:
        result = decode(orjson.dumps(example), example["customer_id"].encode(), NOW)
        assert not isinstance(result, Rejection), (example, result)
        assert result.customer_id == example["customer_id"]


def test_dead_letter_schema_lists_exactly_the_error_codes() -> None:
    assert load("dead-letter")["properties"]["error_code"]["enum"] == [c.value for c in E]


def test_dead_letter_examples_are_what_cxstream_would_write() -> None:
    for example in load("dead-letter")["examples"]:
        payload = base64.b64decode(example["payload"], validate=True)
        decode = decode_survey if example["source_topic"] == "cx.surveys" else decode_interaction
        key = None if example["source_key"] is None else base64.b64decode(example["source_key"], validate=True)
        result = decode(payload, key, 1_793_448_000_000)  # the examples' 2026-10-31T12:00:00Z
        assert isinstance(result, Rejection)
        assert (result.code.value, result.reason) == (example["error_code"], example["reason"])


@pytest.mark.parametrize("key,payload", [(b"cust-1", b'{"score": 11}'), (None, b"\xff\xfe"), (b"", b""),
                                         (b"k", None), (b"\x00\xff", b"x" * 70_000)])
def test_dead_letters_written_by_cxstream_match_their_schema(key: bytes | None, payload: bytes | None) -> None:
    v = validator("dead-letter")
    for code in E:
        doc = dead_letter(Rejection(code, "why"), topic="cx.surveys", partition=3, offset=12, key=key,
                          payload=payload, now_ms=1_793_448_000_123)
        assert not [e.message for e in v.iter_errors(json.loads(orjson.dumps(doc)))], doc
        assert base64.b64decode(doc["payload"]) == (payload or b"")


@pytest.mark.parametrize("topic", ["cx.surveys", "cx.interactions", "cx.customers", "cx.alerts", "cx.deadletter"])
def test_readme_lists_every_topic(topic: str) -> None:
    assert f"| `{topic}`" in (SCHEMAS / "README.md").read_text()


def test_readme_links_every_schema_and_states_the_key_rule() -> None:
    readme = (SCHEMAS / "README.md").read_text()
    for path in ALL_SCHEMAS:
        assert f"]({path.name})" in readme
    assert "**MUST** be the UTF-8 bytes of the document's\n`customer_id`" in readme and "`key_mismatch`" in readme


# -- agreement: the decoder accepts exactly what the schema accepts, and says why alike ---------
PRECEDENCE = [E.MISSING_FIELD, E.WRONG_TYPE, E.INVALID_VALUE, E.UNKNOWN_SURVEY, E.SCORE_OUT_OF_RANGE,
              E.BAD_TIMESTAMP]
TIMESTAMPS = {"occurred_at", "updated_at"}


def leaves(errors: Iterable[ValidationError]) -> Iterator[ValidationError]:
    """The errors that say what is wrong: inside anyOf, without the "or null" branch."""
    for e in errors:
        if e.context:
            yield from leaves(e.context)
        elif not (e.validator == "type" and e.validator_value == "null"):
            yield e


def code_for(e: ValidationError) -> E:
    """The dead-letter code that a schema error corresponds to."""
    path = list(e.absolute_path)
    if path[:1] == ["value"]:  # a profile's value: any rule but a type is invalid_value
        return E.WRONG_TYPE if e.validator == "type" else E.INVALID_VALUE
    if e.validator == "required" or (len(path) == 1 and e.instance is None):
        return E.MISSING_FIELD  # absent, or a required field that is null
    if e.validator == "type":
        return E.WRONG_TYPE
    if path == ["survey"]:  # a string that is no program id can name no program
        return E.UNKNOWN_SURVEY
    if e.validator in ("minimum", "maximum"):
        return E.SCORE_OUT_OF_RANGE
    if len(path) == 1 and path[0] in TIMESTAMPS:
        return E.BAD_TIMESTAMP
    assert e.validator in ("minLength", "maxLength", "pattern", "not", "format", "maxProperties"), e
    return E.INVALID_VALUE


def registry_codes(doc: dict[str, Any]) -> set[E]:
    """What the registry (`SCALES`) adds to a survey response's schema: an id it does not
    define is unknown_survey; a score, if an integer, off its program's scale is
    score_out_of_range."""
    survey, score = doc.get("survey"), doc.get("score")
    if not isinstance(survey, str) or PROGRAM_ID.fullmatch(survey) is None or len(survey) > LABEL_MAX:
        return set()  # the schema's own rules say why
    if survey not in SCALES:
        return {E.UNKNOWN_SURVEY}
    _, low, high = SCALES[survey]
    if type(score) in (int, float) and float(score).is_integer() and not low <= score <= high:
        return {E.SCORE_OUT_OF_RANGE}
    return set()


def expected_code(v: Draft202012Validator, doc: dict[str, Any]) -> E | None:
    """None when the schema (with the registry, for a survey response) accepts doc, else the
    code the decoder must give (the first rule broken, in the decoder's documented order)."""
    codes = {code_for(e) for e in leaves(v.iter_errors(doc))}
    if v is CONTRACTS["survey-response"][0]:
        codes |= registry_codes(doc)
    return min(codes, key=PRECEDENCE.index) if codes else None


def assert_agree(name: str, doc: dict[str, Any]) -> None:
    v, decode = CONTRACTS[name]
    cid = doc.get("customer_id")
    key = cid.encode() if isinstance(cid, str) else None
    raw = orjson.dumps(doc)
    assert len(raw) <= MAX_VALUE_BYTES
    result = decode(raw, key, NOW, MIN_MS)  # no lower bound but years 1..9999: tested elsewhere
    got = result.code if isinstance(result, Rejection) else None
    want = expected_code(v, doc)
    assert got == want, (doc, result, [(list(e.absolute_path), e.message) for e in leaves(v.iter_errors(doc))])


SURVEY = load("survey-response")["examples"][1]
PROFILE = {"customer_id": "c", "segment": {}, "updated_at": "2026-10-31T00:00:00Z"}
INTERACTION = {"event_id": "e", "customer_id": "c", "occurred_at": "2026-10-31T00:00:00Z", "kind": "call"}
TRICKY: list[tuple[str, dict[str, Any]]] = [
    *[("survey-response", {**SURVEY, **over}) for over in [
        {"occurred_at": "２０２６-10-31T11:05:00-03:00"},  # Python's \d matches non-ASCII digits
        {"occurred_at": "2026-10-31T11:05:00Z\n"},  # Python's $ matches before a final newline
        {"occurred_at": "2026-10-31T11:05:00." + "1" * 80 + "Z"},
        {"occurred_at": ""}, {"occurred_at": "2026-10-31t11:05:00z"}, {"occurred_at": "0000-01-01T00:00:00Z"},
        {"occurred_at": "2026-02-29T00:00:00Z"}, {"occurred_at": "2024-02-29T00:00:00Z"},
        {"occurred_at": "2026-10-31T11:05:60Z"}, {"occurred_at": "2026-10-31T11:05:00+23:59"},
        {"occurred_at": "2026-10-31T11:05:00+24:00"}, {"occurred_at": "2026-10-31T11:05:00.Z"},
        {"segment": {"plan\n": "x"}}, {"segment": {"plan": "x\n"}}, {"segment": {"a" * 64: "x"}},
        {"segment": {"a" * 65: "x"}}, {"segment": {"é": "x"}}, {"segment": {"ſ": "x"}}, {"segment": {"K": "x"}},
        {"segment": {"Plan": 1}}, {"segment": {f"d{i}": "" for i in range(17)}}, {"segment": None},
        {"score": 5.0}, {"score": -0.0}, {"score": 1e300}, {"score": 5.5}, {"score": True}, {"score": None},
        {"survey": None}, {"survey": 1}, {"survey": "CSAT"}, {"survey": "csat\n"}, {"survey": "nps", "score": 11},
        {"survey": "nps", "score": 10}, {"survey": "ces", "score": 0}, {"survey": "x", "score": "x"},
        {"survey": "csat-delivery", "score": 10}, {"survey": "csat-delivery", "score": 11},
        {"survey": "csat-delivery", "score": 0}, {"survey": "csat-delivery", "score": 6.0},
        {"survey": "ces-checkout", "score": 7}, {"survey": "ces-checkout", "score": 8},
        {"survey": "ces-returns", "score": 1e300}, {"survey": "rnps", "score": 11},
        {"survey": "unregistered", "score": 3}, {"survey": "unregistered", "score": 99},
        {"survey": "unregistered", "occurred_at": "x"}, {"survey": "unregistered", "score": 2.5},
        {"survey": "csat-delivery", "score": 99, "occurred_at": "x"}, {"survey": "a" * 64},
        {"survey": "a" * 65}, {"survey": "Csat-delivery"}, {"survey": "csat-delivery\n"},
        {"survey": "csat/delivery"}, {"survey": "ces-checkout", "score": 8, "touchpoint": ""},
        {"comment": ""}, {"comment": None}, {"comment": 1}, {"comment": "x" * 4001}, {"event_id": "😀" * 128},
        {"event_id": "😀" * 129}, {"event_id": ""}, {"event_id": None}, {"touchpoint": ""}, {"channel": None},
        {"interaction_id": 5}, {"extra": None},
    ]],
    *[("interaction", {**INTERACTION, **over}) for over in [
        {"kind": ""}, {"kind": None}, {"kind": "k" * 65}, {"occurred_at": 5, "outcome": ""}, {"outcome": None},
        {"segment": {"plan": None}}]],
    *[("customer-profile", {**PROFILE, **over}) for over in [
        *[{"owner": {"email": e}} for e in (
            "a@b", "@b", "a@", "a@@b", "a@b@c", "a b@c", "a@b\n", "a@b\t", "\x00a@b", "a@b\x7f", "ação@b",
            "a@b\u00a0", "a@" + "b" * 252, "a@" + "b" * 253, "ab", "a" * 300, 5, None)],
        *[{"owner": o} for o in (None, {}, [], "x", {"name": ""}, {"name": None}, {"slack": 1}, {"x": 1})],
        {"segment": None}, {"segment": []}, {"updated_at": None}, {"customer_id": None},
        *[{"value": v} for v in (
            None, {}, [], "high", {"tier": None}, {"tier": "strategic"}, {"tier": "gold"}, {"tier": 1},
            {"arr": 0, "currency": "EUR"}, {"arr": 1.5, "currency": "EUR"}, {"arr": -1, "currency": "EUR"},
            {"arr": 5}, {"arr": 5, "currency": None}, {"arr": None, "currency": "EUR"}, {"arr": True, "currency": "EUR"},
            {"arr": "5", "currency": "EUR"}, {"arr": 5, "currency": "eur"}, {"arr": 5, "currency": "EUR\n"},
            {"arr": 5, "currency": "EURO"}, {"currency": "USD"}, {"tier": "low", "x": [1]}, {"arr": 1e300, "currency": "EUR"})]]],
]


@pytest.mark.parametrize("name,doc", TRICKY, ids=[f"{n}-{i}" for i, (n, _) in enumerate(TRICKY)])
def test_agreement_on_tricky_documents(name: str, doc: dict[str, Any]) -> None:
    assert_agree(name, doc)


# -- agreement on generated documents ----------------------------------------------------------
others = st.one_of(st.integers(-3, 14), st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none(),
                   st.lists(st.integers(-9, 9), max_size=2),
                   st.dictionaries(st.text(max_size=3), st.integers(-9, 9), max_size=2))


def mostly(specific: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually a value of the field's own kind (near its limits), sometimes any other JSON value."""
    return st.integers(0, 5).flatmap(lambda i: others if i == 5 else specific)  # hypothesis favours 0


def lengths(low: int, high: int) -> st.SearchStrategy[str]:
    """Strings just inside and just outside the length limits (in 1-, 2- and 4-byte characters)."""
    sizes = sorted({max(0, low - 1), low, low + 1, high - 1, high, high + 1})
    return st.one_of(st.sampled_from(sizes).flatmap(lambda n: st.sampled_from(["x" * n, "é" * n, "😀" * n])),
                     st.text(max_size=5))


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    """Valid RFC 3339 texts with offsets (half of the time), and near misses."""
    ms = draw(st.integers(MIN_MS + 86_400_000, MAX_MS - 86_400_000))
    text = format_rfc3339(ms)[:19]
    text += draw(st.sampled_from(["", ".5", ".250", ".123456789", "." + "9" * 30]))
    text += draw(st.sampled_from(["Z", "z", "+00:00", "-00:00", "+05:30", "-03:00", "+23:59", "-23:59"]))
    if draw(st.booleans()):
        return text
    mutations: list[Callable[[str], str]] = [
        lambda s: s.replace("T", "t"), lambda s: s.replace("T", " "), lambda s: s + "\n", lambda s: s + " ",
        lambda s: " " + s, lambda s: s[:19], lambda s: s[:16] + s[19:], lambda s: s.replace("2", "２", 1),
        lambda s: s.replace("1", "١", 1), lambda s: s[:5] + "13" + s[7:], lambda s: s[:5] + "02-30" + s[10:],
        lambda s: s[:5] + "02-29" + s[10:], lambda s: s[:11] + "24" + s[13:], lambda s: s[:17] + "60" + s[19:],
        lambda s: s[:14] + "60" + s[16:], lambda s: "0000" + s[4:], lambda s: s[:-1] if s.endswith("Z") else s,
        lambda s: s.replace("+05:30", "+24:00").replace("-03:00", "-03:60"), lambda s: s.replace(":", "", 1),
        lambda s: s[:10], lambda s: s[:19] + ".Z",
    ]
    return draw(st.sampled_from(mutations))(text)


names = st.one_of(st.sampled_from(["plan", "region", "value_tier", "x", "a" * 64, "a" * 65, "Plan", "1x", "_x",
                                   "a-b", "", "plan\n", "plan ", "é", "ſ", "K", "plan\u0000"]),
                  st.text(max_size=5))
segments = mostly(st.dictionaries(names, mostly(lengths(1, 128)), max_size=18))
emails = mostly(st.sampled_from(["a@b", "ana@example.com", "@b", "a@", "a@@b", "a b@c", "a@b\n", "a@b\t",
                                 "ação@exemplo.br", "a@b\u00a0", "a@" + "b" * 252, "a@" + "b" * 253, "ab"])
                | st.text(max_size=6))
owners = mostly(st.fixed_dictionaries({}, optional={
    "name": mostly(lengths(1, 128)), "email": emails, "slack": mostly(lengths(1, 128)), "team": others}))
values = mostly(st.fixed_dictionaries({}, optional={
    "tier": mostly(st.sampled_from(["strategic", "high", "standard", "low", "gold", "High"])),
    "arr": mostly(st.integers(-2, 10**9) | st.floats(-1, 1e12) | st.sampled_from([-0.0, 1e300])),
    "currency": mostly(st.sampled_from(["EUR", "USD", "eur", "EURO", "EU", "EUR\n"])),
    "note": others}))
scores = mostly(st.integers(-2, 12) | st.floats(-20, 20)
                | st.sampled_from([7.0, -0.0, 10.0, 5.5, 1e300, -1e300, 2**63 - 1, True, "7"]))

FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "event_id": mostly(lengths(1, 128)),
    "customer_id": mostly(lengths(1, 128)),
    "interaction_id": mostly(lengths(1, 128)),
    "touchpoint": mostly(lengths(1, 64)),
    "channel": mostly(lengths(1, 64)),
    "kind": mostly(lengths(1, 64)),
    "outcome": mostly(lengths(1, 64)),
    "comment": mostly(lengths(0, 4000)),
    "survey": mostly(st.sampled_from(["nps", "csat", "ces", "NPS", "nps ", "", "other", "csat-delivery",
                                      "ces-checkout", "ces-returns", "tnps-support", "rnps", "a" * 65,
                                      "csat-app\n", "Rnps", "x:y"])),
    "score": scores,
    "occurred_at": mostly(timestamps() | st.text(max_size=30)),
    "updated_at": mostly(timestamps() | st.text(max_size=30)),
    "segment": segments,
    "owner": owners,
    "value": values,
    "extra": others,
}
DOCUMENT_FIELDS = {
    "survey-response": ["event_id", "customer_id", "survey", "score", "occurred_at", "segment",
                        "touchpoint", "channel", "comment", "interaction_id", "extra"],
    "interaction": ["event_id", "customer_id", "occurred_at", "kind", "touchpoint", "channel",
                    "outcome", "segment", "extra"],
    "customer-profile": ["customer_id", "segment", "updated_at", "owner", "value", "extra"],
}


@st.composite
def documents(draw: st.DrawFn, name: str) -> dict[str, Any]:
    """An example with up to 4 fields removed or replaced (by valid or invalid values)."""
    doc = dict(draw(st.sampled_from(CONTRACTS[name][0].schema["examples"])))
    for field in draw(st.lists(st.sampled_from(DOCUMENT_FIELDS[name]), max_size=4, unique=True)):
        if field in doc and draw(st.integers(0, 7)) == 7:
            del doc[field]
        else:
            doc[field] = draw(FIELD_VALUES[field])
    return doc


@pytest.mark.parametrize("name", INPUTS)
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_decoder_accepts_exactly_what_the_schema_accepts(name: str, data: st.DataObject) -> None:
    assert_agree(name, data.draw(documents(name)))


@pytest.mark.parametrize("size", [MAX_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES + 1, 1_048_000, 10_000_000])
def test_a_dead_letter_always_fits_in_a_kafka_request(size: int) -> None:
    """Base64 grows a payload by a third: an input just under the broker's limit would make a
    dead letter over the producer's 1 MiB request limit, and stop the stream on it."""
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    key = b"k" * (MAX_KEY_BYTES + 5) if size > 1_000_000 else b"cust-1"
    doc = dead_letter(Rejection(E.TOO_LARGE, "why"), topic="cx.surveys", partition=0, offset=5,
                      key=key, payload=payload, now_ms=1_793_448_000_123)
    encoded = orjson.dumps(doc)
    assert len(encoded) + len(key[:MAX_KEY_BYTES]) < 1_000_000
    assert not [e.message for e in validator("dead-letter").iter_errors(json.loads(encoded))]
    kept = base64.b64decode(doc["payload"])
    assert payload.startswith(kept)
    if size > MAX_PAYLOAD_BYTES:
        assert doc["payload_truncated"] is True and doc["payload_bytes"] == size
        assert doc["payload_sha256"] == hashlib.sha256(payload).hexdigest()
        assert len(kept) == MAX_PAYLOAD_BYTES
    else:
        assert kept == payload and "payload_truncated" not in doc
    assert ("source_key_truncated" in doc) == (len(key) > MAX_KEY_BYTES)
