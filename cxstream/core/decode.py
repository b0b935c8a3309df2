"""Decode and validate input messages against the contracts in `schemas/`.

Hand-written rather than a generic JSON Schema engine because it runs for every event and
must map each failure to a dead-letter code. It accepts exactly the documents the schemas
accept (`tests/unit/core/test_schemas.py` checks that on generated documents, against the
jsonschema package with format checking), plus two runtime rules the schemas cannot state:
a timestamp may be at most `MAX_FUTURE_SKEW_MS` ahead of `now_ms`, and the Kafka key must be
the UTF-8 bytes of `customer_id`.

It never raises: any input bytes give either a typed event or a `Rejection`. Reasons name the
field and the rule, and never a string value (those can be personal data; the raw bytes
travel separately in the dead letter). Numbers such as a score or a length may appear.

When a document breaks several rules, the code is the first of these that applies (the whole
document is checked for one before the next is looked at):

1. `too_large`: the value is over `MAX_VALUE_BYTES` (checked before parsing)
2. `not_json`: not UTF-8 JSON (also NaN/Infinity, numbers beyond double range, nesting > 1024)
3. `not_object`: JSON, but not an object
4. `missing_field`: a required field is absent or null
5. `wrong_type`: a field has the wrong JSON type
6. `invalid_value`: a string too short or too long, a bad segment dimension name, too many
   dimensions, an e-mail address without exactly one `@`
7. `unknown_survey`: `survey` is not nps, csat or ces
8. `score_out_of_range`: `score` is outside its survey's scale
9. `bad_timestamp`: the timestamp is not RFC 3339 with an offset or Z
10. `future_timestamp`: the timestamp is more than `MAX_FUTURE_SKEW_MS` after `now_ms`
11. `key_mismatch`: the key is not the UTF-8 bytes of `customer_id` (a missing key included)

Decisions, which the schemas state too:

* Integers follow JSON Schema 2020-12: a number with a zero fraction is an integer, so a score
  of 7.0 (or 7e0) is accepted and stored as 7; 7.5 is `wrong_type`, and so are true/false.
  (JSON Schema cannot tell 7.0 from 7, so rejecting it would make the schemas and the decoder
  disagree.) A huge integer-valued number such as 1e300 is `score_out_of_range`.
* An optional property that is `null` means the same as leaving it out; a required one that is
  `null` is `missing_field`.
* Unknown extra properties are allowed and ignored (forward compatibility).
* String lengths count Unicode code points, as JSON Schema does.

Pure: no I/O, no clock (the processing time comes in as `now_ms`), no logging.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from cxstream.core.errors import ErrorCode as E
from cxstream.core.errors import Rejection
from cxstream.core.model import (
    SCORE_RANGES,
    SURVEY_KINDS,
    CustomerProfile,
    SurveyKind,
    Interaction,
    Owner,
    SurveyResponse,
)
from cxstream.core.timefmt import parse_rfc3339

__all__ = [
    "MAX_VALUE_BYTES",
    "MAX_FUTURE_SKEW_MS",
    "decode_survey",
    "decode_interaction",
    "decode_profile",
]

MAX_VALUE_BYTES = 65_536
MAX_FUTURE_SKEW_MS = 300_000

ID_MAX = 128
LABEL_MAX = 64
COMMENT_MAX = 4000
NAME_MAX = 128
EMAIL_MIN, EMAIL_MAX = 3, 254
SEGMENT_MAX_DIMENSIONS = 16
DIMENSION_NAME_MAX = 64
DIMENSION_VALUE_MAX = 128

_DIMENSION_NAME = re.compile(r"[a-z][a-z0-9_]*")  # used with fullmatch: no `$` newline quirk
#: Dimension names already found valid: a stream uses a handful, and the regex would
#: otherwise run for each one of every event. Bounded: once full, names are just not added.
_GOOD_NAMES: set[str] = set()
_GOOD_NAMES_MAX = 1024
_EMAIL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")  # spaces and control characters

# String fields: (name, required, min length, max length). Order = order of the reasons.
_Spec = tuple[tuple[str, bool, int, int], ...]
_SURVEY_STRINGS: _Spec = (
    ("event_id", True, 1, ID_MAX),
    ("customer_id", True, 1, ID_MAX),
    ("touchpoint", False, 1, LABEL_MAX),
    ("channel", False, 1, LABEL_MAX),
    ("comment", False, 0, COMMENT_MAX),
    ("interaction_id", False, 1, ID_MAX),
)
_INTERACTION_STRINGS: _Spec = (
    ("event_id", True, 1, ID_MAX),
    ("customer_id", True, 1, ID_MAX),
    ("kind", True, 1, LABEL_MAX),
    ("touchpoint", False, 1, LABEL_MAX),
    ("channel", False, 1, LABEL_MAX),
    ("outcome", False, 1, LABEL_MAX),
)
_OWNER_STRINGS: _Spec = (
    ("name", False, 1, NAME_MAX),
    ("email", False, EMAIL_MIN, EMAIL_MAX),
    ("slack", False, 1, NAME_MAX),
)
_SURVEYS: dict[str, SurveyKind] = {kind: kind for kind in SURVEY_KINDS}  # canonical strings


# -- reasons -----------------------------------------------------------------------------------
def _json_type(value: Any) -> str:
    """The JSON type name of a decoded value (for reasons: never the value itself)."""
    t = type(value)
    if t is str:
        return "string"
    if t is bool:
        return "boolean"
    if t is int:
        return "integer"
    if t is float:
        return "number"
    if t is dict:
        return "object"
    if t is list:
        return "array"
    return "null" if value is None else t.__name__


def _missing(name: str, doc: dict[str, Any]) -> Rejection:
    how = "is null" if name in doc else "is missing"
    return Rejection(E.MISSING_FIELD, f"required field {name!r} {how}")


def _wrong(name: str, expected: str, value: Any) -> Rejection:
    return Rejection(E.WRONG_TYPE, f"{name!r} must be {expected}, got {_json_type(value)}")


def _length(name: str, low: int, high: int, length: int) -> Rejection:
    return Rejection(E.INVALID_VALUE, f"{name!r} must be {low}..{high} characters long, got {length}")


# -- the phases shared by all events -----------------------------------------------------------
def _load(raw: Any) -> dict[str, Any] | Rejection:
    """TOO_LARGE, NOT_JSON, NOT_OBJECT. `raw` is typed Any: the decoders never raise, even
    on an argument that is not bytes (the compiled core would check the type first)."""
    if len(raw) > MAX_VALUE_BYTES:
        return Rejection(E.TOO_LARGE, f"value is {len(raw)} bytes, over the {MAX_VALUE_BYTES}-byte limit")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:  # the message names the problem, not the content
        return Rejection(E.NOT_JSON, f"not valid UTF-8 JSON: {exc.msg} at byte {exc.pos}")
    if type(doc) is not dict:
        return Rejection(E.NOT_OBJECT, f"expected a JSON object, got {_json_type(doc)}")
    return doc


def _strings_ok(spec: _Spec, values: list[Any]) -> bool:
    """All string fields in `spec` are fine: one pass for the usual case. When it says no, the
    phase functions below (presence, type, length, in that order) find the reason."""
    for (_, required, low, high), value in zip(spec, values):
        if value is None:
            if required:
                return False
        elif type(value) is not str or not low <= len(value) <= high:
            return False
    return True


def _strings_present(doc: dict[str, Any], spec: _Spec, values: list[Any]) -> Rejection | None:
    """MISSING_FIELD for the string fields in `spec` (values: doc.get of each, same order)."""
    for (name, required, _, _), value in zip(spec, values):
        if value is None and required:
            return _missing(name, doc)
    return None


def _strings_typed(spec: _Spec, values: list[Any], prefix: str = "") -> Rejection | None:
    for (name, _, _, _), value in zip(spec, values):
        if value is not None and type(value) is not str:
            return _wrong(prefix + name, "a string", value)
    return None


def _strings_sized(spec: _Spec, values: list[Any], prefix: str = "") -> Rejection | None:
    for (name, _, low, high), value in zip(spec, values):
        if value is not None and not low <= len(value) <= high:
            return _length(prefix + name, low, high, len(value))
    return None


def _segment_ok(segment: Any) -> bool:
    """`segment` passes `_segment_typed` and `_segment_sized` (one pass for the usual case;
    when it says no, those two find the reason, in phase order)."""
    if type(segment) is not dict or len(segment) > SEGMENT_MAX_DIMENSIONS:
        return False
    for name, value in segment.items():
        if type(value) is not str or not 1 <= len(value) <= DIMENSION_VALUE_MAX:
            return False
        if name not in _GOOD_NAMES and not _dimension_name_ok(name):
            return False
    return True


def _dimension_name_ok(name: str) -> bool:
    """The rule for a dimension name; remembers the good ones in `_GOOD_NAMES`."""
    if len(name) > DIMENSION_NAME_MAX or _DIMENSION_NAME.fullmatch(name) is None:
        return False
    if len(_GOOD_NAMES) < _GOOD_NAMES_MAX:
        _GOOD_NAMES.add(name)
    return True


def _segment_typed(segment: Any) -> Rejection | None:
    if type(segment) is not dict:
        return _wrong("segment", "an object", segment)
    for value in segment.values():
        if type(value) is not str:
            return Rejection(E.WRONG_TYPE, f"'segment' values must be strings, got {_json_type(value)}")
    return None


def _segment_sized(segment: dict[str, str]) -> Rejection | None:
    if len(segment) > SEGMENT_MAX_DIMENSIONS:
        return Rejection(E.INVALID_VALUE, f"'segment' has {len(segment)} dimensions, "
                         f"at most {SEGMENT_MAX_DIMENSIONS} are allowed")
    for name, value in segment.items():
        if not _dimension_name_ok(name):
            return Rejection(E.INVALID_VALUE, f"'segment' dimension names must be 1..{DIMENSION_NAME_MAX} "
                             "characters matching ^[a-z][a-z0-9_]*$")
        if not 1 <= len(value) <= DIMENSION_VALUE_MAX:
            return Rejection(E.INVALID_VALUE, f"'segment' values must be 1..{DIMENSION_VALUE_MAX} "
                             f"characters long, got {len(value)}")
    return None


def _timestamp(name: str, value: str, now_ms: int) -> int | Rejection:
    """BAD_TIMESTAMP, FUTURE_TIMESTAMP."""
    ms = parse_rfc3339(value)
    if ms is None:
        return Rejection(E.BAD_TIMESTAMP, f"{name!r} must be an RFC 3339 date-time with an offset "
                         "or Z, e.g. 2026-10-31T12:00:00Z")
    if ms - now_ms > MAX_FUTURE_SKEW_MS:
        return Rejection(E.FUTURE_TIMESTAMP, f"{name!r} is {(ms - now_ms) / 1000:.3f} s ahead of the "
                         f"processing clock, more than the {MAX_FUTURE_SKEW_MS // 1000} s allowed "
                         "(check the producer's clock)")
    return ms


def _key(key: bytes | None, customer_id: str) -> Rejection | None:
    """KEY_MISMATCH."""
    if key is None:
        return Rejection(E.KEY_MISMATCH, "the message key must be the UTF-8 bytes of customer_id; "
                         "the message has no key")
    if key != customer_id.encode():
        return Rejection(E.KEY_MISMATCH, "the message key must be the UTF-8 bytes of customer_id; "
                         "they differ")
    return None


def _guarded(exc: Exception) -> Rejection:
    # Unreachable by design (the tests look for it); a decoder bug must dead-letter one
    # message, not stop the worker. The type only: a message could quote the input.
    return Rejection(E.PROCESSING_ERROR, f"decoder error {type(exc).__name__}")


# -- the events --------------------------------------------------------------------------------
def decode_survey(raw: Any, key: bytes | None, now_ms: int) -> SurveyResponse | Rejection:
    """A survey response (schemas/survey-response.schema.json), or why not."""
    try:
        return _survey(raw, key, now_ms)
    except Exception as exc:  # noqa: BLE001
        return _guarded(exc)


def decode_interaction(raw: Any, key: bytes | None, now_ms: int) -> Interaction | Rejection:
    """An interaction (schemas/interaction.schema.json), or why not."""
    try:
        return _interaction(raw, key, now_ms)
    except Exception as exc:  # noqa: BLE001
        return _guarded(exc)


def decode_profile(raw: Any, key: bytes | None, now_ms: int) -> CustomerProfile | Rejection:
    """A customer profile (schemas/customer-profile.schema.json), or why not."""
    try:
        return _profile(raw, key, now_ms)
    except Exception as exc:  # noqa: BLE001
        return _guarded(exc)


def _survey(raw: Any, key: bytes | None, now_ms: int) -> SurveyResponse | Rejection:
    doc = _load(raw)
    if isinstance(doc, Rejection):
        return doc
    get = doc.get
    strings: list[Any] = [get("event_id"), get("customer_id"), get("touchpoint"), get("channel"),
               get("comment"), get("interaction_id")]
    survey, score, occurred_at, segment = get("survey"), get("score"), get("occurred_at"), get("segment")
    strings_ok = _strings_ok(_SURVEY_STRINGS, strings)
    segment_ok = segment is None or _segment_ok(segment)
    # missing_field
    if not strings_ok and (r := _strings_present(doc, _SURVEY_STRINGS, strings)) is not None:
        return r
    if survey is None:
        return _missing("survey", doc)
    if score is None:
        return _missing("score", doc)
    if occurred_at is None:
        return _missing("occurred_at", doc)
    # wrong_type
    if not strings_ok and (r := _strings_typed(_SURVEY_STRINGS, strings)) is not None:
        return r
    if type(survey) is not str:
        return _wrong("survey", "a string", survey)
    if type(score) is not int:
        if type(score) is not float or not score.is_integer():
            return _wrong("score", "an integer", score)
        score = int(score)
    if type(occurred_at) is not str:
        return _wrong("occurred_at", "a string", occurred_at)
    if not segment_ok and (r := _segment_typed(segment)) is not None:
        return r
    # invalid_value
    if not strings_ok and (r := _strings_sized(_SURVEY_STRINGS, strings)) is not None:
        return r
    if not segment_ok and segment and (r := _segment_sized(segment)) is not None:
        return r
    # unknown_survey, score_out_of_range
    kind = _SURVEYS.get(survey)
    if kind is None:
        return Rejection(E.UNKNOWN_SURVEY, "'survey' must be one of nps, csat, ces")
    low, high = SCORE_RANGES[kind]
    if not low <= score <= high:
        shown = f"score {score}" if -1_000_000 < score < 1_000_000 else "score"
        return Rejection(E.SCORE_OUT_OF_RANGE, f"{shown} is outside the {kind} range {low}..{high}")
    # bad_timestamp, future_timestamp
    at = _timestamp("occurred_at", occurred_at, now_ms)
    if isinstance(at, Rejection):
        return at
    # key_mismatch
    event_id, customer_id, touchpoint, channel, comment, interaction_id = strings
    if (r := _key(key, customer_id)) is not None:
        return r
    return SurveyResponse(event_id, customer_id, kind, score, at,
                          {} if segment is None else segment, touchpoint, channel,
                          comment, interaction_id)


def _interaction(raw: Any, key: bytes | None, now_ms: int) -> Interaction | Rejection:
    doc = _load(raw)
    if isinstance(doc, Rejection):
        return doc
    get = doc.get
    strings: list[Any] = [get("event_id"), get("customer_id"), get("kind"), get("touchpoint"), get("channel"),
               get("outcome")]
    occurred_at, segment = get("occurred_at"), get("segment")
    strings_ok = _strings_ok(_INTERACTION_STRINGS, strings)
    segment_ok = segment is None or _segment_ok(segment)
    # missing_field
    if not strings_ok and (r := _strings_present(doc, _INTERACTION_STRINGS, strings)) is not None:
        return r
    if occurred_at is None:
        return _missing("occurred_at", doc)
    # wrong_type
    if not strings_ok and (r := _strings_typed(_INTERACTION_STRINGS, strings)) is not None:
        return r
    if type(occurred_at) is not str:
        return _wrong("occurred_at", "a string", occurred_at)
    if not segment_ok and (r := _segment_typed(segment)) is not None:
        return r
    # invalid_value
    if not strings_ok and (r := _strings_sized(_INTERACTION_STRINGS, strings)) is not None:
        return r
    if not segment_ok and segment and (r := _segment_sized(segment)) is not None:
        return r
    # bad_timestamp, future_timestamp
    at = _timestamp("occurred_at", occurred_at, now_ms)
    if isinstance(at, Rejection):
        return at
    # key_mismatch
    event_id, customer_id, kind, touchpoint, channel, outcome = strings
    if (r := _key(key, customer_id)) is not None:
        return r
    return Interaction(event_id, customer_id, at, kind, touchpoint, channel, outcome,
                       {} if segment is None else segment)


def _profile(raw: Any, key: bytes | None, now_ms: int) -> CustomerProfile | Rejection:
    doc = _load(raw)
    if isinstance(doc, Rejection):
        return doc
    get = doc.get
    customer_id, segment, updated_at, owner = get("customer_id"), get("segment"), get("updated_at"), get("owner")
    # missing_field
    if customer_id is None:
        return _missing("customer_id", doc)
    if segment is None:
        return _missing("segment", doc)
    if updated_at is None:
        return _missing("updated_at", doc)
    # wrong_type
    if type(customer_id) is not str:
        return _wrong("customer_id", "a string", customer_id)
    if (r := _segment_typed(segment)) is not None:
        return r
    if type(updated_at) is not str:
        return _wrong("updated_at", "a string", updated_at)
    owner_strings: list[Any] = []
    if owner is not None:
        if type(owner) is not dict:
            return _wrong("owner", "an object", owner)
        owner_strings = [owner.get("name"), owner.get("email"), owner.get("slack")]
        if (r := _strings_typed(_OWNER_STRINGS, owner_strings, "owner.")) is not None:
            return r
    # invalid_value
    if not 1 <= len(customer_id) <= ID_MAX:
        return _length("customer_id", 1, ID_MAX, len(customer_id))
    if segment and (r := _segment_sized(segment)) is not None:
        return r
    if owner is not None:
        if (r := _strings_sized(_OWNER_STRINGS, owner_strings, "owner.")) is not None:
            return r
        email = owner_strings[1]
        if email is not None and (email.count("@") != 1 or email[0] == "@" or email[-1] == "@"
                                  or _EMAIL_FORBIDDEN.search(email) is not None):
            return Rejection(E.INVALID_VALUE, "'owner.email' must be an e-mail address: one @ with "
                             "text on both sides, no spaces or control characters")
    # bad_timestamp, future_timestamp
    at = _timestamp("updated_at", updated_at, now_ms)
    if isinstance(at, Rejection):
        return at
    # key_mismatch
    if (r := _key(key, customer_id)) is not None:
        return r
    return CustomerProfile(customer_id, segment, at, None if owner is None else Owner(*owner_strings))
