"""Decode and validate input messages against the contracts in `schemas/`.

Hand-written rather than a generic JSON Schema engine because it runs for every event and
must map each failure to a dead-letter code; `tests/unit/core/test_schemas.py` proves it
accepts exactly the documents the schemas accept. It never raises: any input bytes give
either a typed event or a `Rejection`. Reasons name the field and the rule, never a string
value (those can be personal data; the raw bytes travel separately in the dead letter).

Numbers: JSON Schema counts 7.0 as an integer, so the decoder does too (and stores 7).
Optional fields may be `null`, which means absent. Unknown extra fields are allowed.
"""

from __future__ import annotations

import re
from typing import Any, Callable

import orjson

from cxstream.core.errors import ErrorCode as E
from cxstream.core.errors import Rejection
from cxstream.core.model import (
    SCORE_RANGES,
    CustomerProfile,
    Interaction,
    Owner,
    SurveyResponse,
)
from cxstream.core.timefmt import parse_rfc3339

MAX_VALUE_BYTES = 65_536
MAX_FUTURE_SKEW_MS = 300_000
ID_MAX = 128
LABEL_MAX = 64
COMMENT_MAX = 4000
SEGMENT_MAX_PROPERTIES = 16
SEGMENT_VALUE_MAX = 128
EMAIL_MAX = 254
_DIMENSION = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")


class _Reject(Exception):
    """Internal short-cut out of nested checks; never escapes this module."""

    def __init__(self, code: E, reason: str) -> None:
        self.rejection = Rejection(code, reason)


def _string(doc: dict[str, Any], field: str, max_len: int, *, required: bool,
            min_len: int = 1) -> str | None:
    value = doc.get(field)
    if value is None:
        if required:
            raise _Reject(E.MISSING_FIELD, f"required field {field!r} is missing"
                          if field not in doc else f"required field {field!r} is null")
        return None
    if type(value) is not str:
        raise _Reject(E.WRONG_TYPE, f"{field!r} must be a string, got {_json_type(value)}")
    if not min_len <= len(value) <= max_len:
        raise _Reject(E.INVALID_VALUE, f"{field!r} must be {min_len}..{max_len} characters long")
    return value


def _timestamp(doc: dict[str, Any], field: str, now_ms: int) -> int:
    raw = _string(doc, field, 64, required=True)
    assert raw is not None
    ms = parse_rfc3339(raw)
    if ms is None:
        raise _Reject(E.BAD_TIMESTAMP,
                      f"{field!r} must be an RFC 3339 date-time with offset or Z, e.g. 2026-10-31T12:00:00Z")
    if ms > now_ms + MAX_FUTURE_SKEW_MS:
        raise _Reject(E.FUTURE_TIMESTAMP, f"{field!r} is more than 5 minutes in the future "
                      "(check the producer's clock)")
    return ms


def _segment(doc: dict[str, Any], *, required: bool) -> dict[str, str]:
    value = doc.get("segment")
    if value is None:
        if required:
            raise _Reject(E.MISSING_FIELD, "required field 'segment' is missing")
        return {}
    if type(value) is not dict:
        raise _Reject(E.WRONG_TYPE, f"'segment' must be an object, got {_json_type(value)}")
    if len(value) > SEGMENT_MAX_PROPERTIES:
        raise _Reject(E.INVALID_VALUE, f"'segment' has more than {SEGMENT_MAX_PROPERTIES} dimensions")
    for name, item in value.items():
        if not _DIMENSION.match(name):
            raise _Reject(E.INVALID_VALUE, "segment dimension names must match ^[a-z][a-z0-9_]{0,63}$")
        if type(item) is not str:
            raise _Reject(E.WRONG_TYPE, f"segment value of {name!r} must be a string, got {_json_type(item)}")
        if not 1 <= len(item) <= SEGMENT_VALUE_MAX:
            raise _Reject(E.INVALID_VALUE, f"segment value of {name!r} must be 1..{SEGMENT_VALUE_MAX} characters long")
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _load(raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_VALUE_BYTES:
        raise _Reject(E.TOO_LARGE, f"value is {len(raw)} bytes, over the {MAX_VALUE_BYTES}-byte limit")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _Reject(E.NOT_JSON, f"not valid UTF-8 JSON ({str(exc).split(':')[0]})") from None
    if type(doc) is not dict:
        raise _Reject(E.NOT_OBJECT, f"expected a JSON object, got {_json_type(doc)}")
    return doc


def _check_key(key: bytes | None, customer_id: str) -> None:
    if key is None or key != customer_id.encode():
        raise _Reject(E.KEY_MISMATCH, "the message key must be the document's customer_id "
                      + ("(the message has no key)" if key is None else "(they differ)"))


def _guard(fn: Callable[[bytes, bytes | None, int], Any]) -> Callable[[bytes, bytes | None, int], Any]:
    def decode(raw: bytes, key: bytes | None, now_ms: int) -> Any:
        try:
            return fn(raw, key, now_ms)
        except _Reject as r:
            return r.rejection
        except Exception as exc:  # noqa: BLE001 - a decoder bug must still dead-letter, not crash
            return Rejection(E.PROCESSING_ERROR, f"decoder error {type(exc).__name__}")

    decode.__name__ = fn.__name__
    decode.__doc__ = fn.__doc__
    return decode


@_guard
def decode_survey(raw: bytes, key: bytes | None, now_ms: int) -> SurveyResponse | Rejection:
    """A survey response (schemas/survey-response.schema.json)."""
    doc = _load(raw)
    event_id = _string(doc, "event_id", ID_MAX, required=True)
    customer_id = _string(doc, "customer_id", ID_MAX, required=True)
    survey = doc.get("survey")
    if survey is None:
        raise _Reject(E.MISSING_FIELD, "required field 'survey' is missing")
    if type(survey) is not str:
        raise _Reject(E.WRONG_TYPE, f"'survey' must be a string, got {_json_type(survey)}")
    if survey not in SCORE_RANGES:
        raise _Reject(E.UNKNOWN_SURVEY, "'survey' must be one of nps, csat, ces")
    score = doc.get("score")
    if score is None:
        raise _Reject(E.MISSING_FIELD, "required field 'score' is missing")
    if type(score) is float and score.is_integer():
        score = int(score)
    if type(score) is not int:
        raise _Reject(E.WRONG_TYPE, f"'score' must be an integer, got {_json_type(score)}")
    low, high = SCORE_RANGES[survey]
    if not low <= score <= high:
        raise _Reject(E.SCORE_OUT_OF_RANGE, f"score {score} is outside the {survey} scale {low}..{high}")
    occurred_at = _timestamp(doc, "occurred_at", now_ms)
    segment = _segment(doc, required=False)
    touchpoint = _string(doc, "touchpoint", LABEL_MAX, required=False)
    channel = _string(doc, "channel", LABEL_MAX, required=False)
    comment = _string(doc, "comment", COMMENT_MAX, required=False, min_len=0)
    interaction_id = _string(doc, "interaction_id", ID_MAX, required=False)
    assert event_id is not None and customer_id is not None
    _check_key(key, customer_id)
    return SurveyResponse(event_id, customer_id, survey, score, occurred_at,  # type: ignore[arg-type]
                          segment, touchpoint, channel, comment, interaction_id)


@_guard
def decode_interaction(raw: bytes, key: bytes | None, now_ms: int) -> Interaction | Rejection:
    """A customer interaction (schemas/interaction.schema.json)."""
    doc = _load(raw)
    event_id = _string(doc, "event_id", ID_MAX, required=True)
    customer_id = _string(doc, "customer_id", ID_MAX, required=True)
    occurred_at = _timestamp(doc, "occurred_at", now_ms)
    kind = _string(doc, "kind", LABEL_MAX, required=True)
    touchpoint = _string(doc, "touchpoint", LABEL_MAX, required=False)
    channel = _string(doc, "channel", LABEL_MAX, required=False)
    outcome = _string(doc, "outcome", LABEL_MAX, required=False)
    segment = _segment(doc, required=False)
    assert event_id is not None and customer_id is not None and kind is not None
    _check_key(key, customer_id)
    return Interaction(event_id, customer_id, occurred_at, kind, touchpoint, channel, outcome, segment)


@_guard
def decode_profile(raw: bytes, key: bytes | None, now_ms: int) -> CustomerProfile | Rejection:
    """A customer profile (schemas/customer-profile.schema.json)."""
    doc = _load(raw)
    customer_id = _string(doc, "customer_id", ID_MAX, required=True)
    segment = _segment(doc, required=True)
    updated_at = _timestamp(doc, "updated_at", now_ms)
    owner = None
    raw_owner = doc.get("owner")
    if raw_owner is not None:
        if type(raw_owner) is not dict:
            raise _Reject(E.WRONG_TYPE, f"'owner' must be an object, got {_json_type(raw_owner)}")
        name = _string(raw_owner, "name", ID_MAX, required=False)
        email = _string(raw_owner, "email", EMAIL_MAX, required=False, min_len=3)
        if email is not None and "@" not in email:
            raise _Reject(E.INVALID_VALUE, "'owner.email' must be an e-mail address")
        slack = _string(raw_owner, "slack", ID_MAX, required=False)
        owner = Owner(name, email, slack)
    assert customer_id is not None
    _check_key(key, customer_id)
    return CustomerProfile(customer_id, segment, updated_at, owner)
