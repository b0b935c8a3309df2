"""Decode and validate input messages against the contracts in `schemas/`.

Hand-written rather than a generic JSON Schema engine because it runs for every event and
must map each failure to a dead-letter code. It accepts exactly the documents the schemas
accept (`tests/unit/core/test_schemas.py` checks that on generated documents, against the
jsonschema package with format checking), plus the runtime rules the schemas cannot state:
a timestamp may be at most `MAX_FUTURE_SKEW_MS` ahead of `now_ms` and no earlier than
`min_ms` (the setting `CXSTREAM_MIN_EVENT_TIME`), the Kafka key must be the UTF-8 bytes of
`customer_id`, no object may repeat a key (parsers disagree on which copy wins), and
`survey` must name a program of the registry with `score` on that program's scale (the
schema states this for the built-in programs only; it cannot know a deployment's registry).

What it accepts can be used downstream without raising: its timestamps lie in
`min_ms..now_ms + MAX_FUTURE_SKEW_MS` and within years 0001..9999 in UTC, so
`format_rfc3339` (alerts, the HTTP API) takes them, and its ids, labels, names and e-mail
addresses hold no control character or line separator that could split an e-mail header,
a log line or the command line's output.

It never raises: any input bytes give either a typed event or a `Rejection`. Reasons name the
field and the rule, and never a string value (those can be personal data; the raw bytes
travel separately in the dead letter). Numbers such as a score or a length may appear, and
so may the ids of the registry's programs (configuration, not input).

When a document breaks several rules, the code is the first of these that applies (the whole
document is checked for one before the next is looked at):

1. `too_large`: the value is over `MAX_VALUE_BYTES` (checked before parsing)
2. `not_json`: not UTF-8 JSON (also NaN/Infinity, numbers beyond double range, nesting > 1024,
   and a value that is not bytes)
3. `not_object`: JSON, but not an object
4. `duplicate_key`: an object, at any depth (unknown properties too), has a key twice
5. `missing_field`: a required field is absent or null
6. `wrong_type`: a field has the wrong JSON type
7. `invalid_value`: a string too short or too long, a bad segment dimension name, too many
   dimensions, an e-mail address without exactly one `@`, a control character (below)
8. `unknown_survey`: `survey` is not the id of a program the decoder was given (`scales`:
   the registry, `CXSTREAM_SURVEYS`; by default the built-in nps, csat and ces)
9. `score_out_of_range`: `score` is outside its program's scale
10. `bad_timestamp`: the timestamp is not RFC 3339 with an offset or Z
11. `timestamp_out_of_range`: the timestamp is before `min_ms` (or before year 0001 in UTC)
12. `future_timestamp`: the timestamp is more than `MAX_FUTURE_SKEW_MS` after `now_ms` (or
    after 9999-12-31T23:59:59.999Z)
13. `key_mismatch`: the key is not the UTF-8 bytes of `customer_id` (a missing key included)

Decisions, which the schemas state too:

* Integers follow JSON Schema 2020-12: a number with a zero fraction is an integer, so a score
  of 7.0 (or 7e0) is accepted and stored as 7; 7.5 is `wrong_type`, and so are true/false.
  (JSON Schema cannot tell 7.0 from 7, so rejecting it would make the schemas and the decoder
  disagree.) A huge integer-valued number such as 1e300 is `score_out_of_range`.
* An optional property that is `null` means the same as leaving it out; a required one that is
  `null` is `missing_field`.
* Unknown extra properties are allowed and ignored (forward compatibility).
* String lengths count Unicode code points, as JSON Schema does.
* Ids, labels, names, segment values and e-mail addresses hold no control character (C0,
  DEL, C1) and no U+2028/U+2029: that covers CR, LF and every other character
  `str.splitlines` splits on. A comment is free text and may keep tabs and line breaks
  (CR, LF), nothing else of those.
* The time window is checked at decode time, so a record that passes can never make the
  alert builder or the HTTP API raise later; `min_ms` below year 0001 counts as year 0001.

Pure: no I/O, no clock (the processing time comes in as `now_ms`), no logging.
"""

from __future__ import annotations

from typing import Any, Mapping, TypeAlias

import orjson

from cxstream.core.dupkeys import kept_strings, repeated_key, repeats_a_key, repeats_a_key_of
from cxstream.core.errors import ErrorCode as E
from cxstream.core.errors import Rejection
from cxstream.core.fieldrules import (
    COMMENT_MAX,
    DEFAULT_MIN_EVENT_MS,
    EMAIL_MAX,
    EMAIL_MIN,
    ID_MAX,
    LABEL_MAX,
    MAX_FUTURE_SKEW_MS,
    NAME_MAX,
    Spec,
    email_shape,
    guarded,
    json_type,
    key_rule,
    length,
    missing,
    plain,
    program_id,
    segment_ok,
    segment_sized,
    segment_typed,
    strings_clean,
    strings_ok,
    strings_present,
    strings_sized,
    strings_typed,
    timestamp,
    value_kept,
    value_typed,
    value_valid,
    wrong,
)
from cxstream.core.model import (
    BUILTIN_SCALES,
    CustomerProfile,
    SurveyKind,
    Interaction,
    Owner,
    SurveyResponse,
)

__all__ = [
    "MAX_VALUE_BYTES",
    "MAX_FUTURE_SKEW_MS",
    "DEFAULT_MIN_EVENT_MS",
    "Scales",
    "decode_survey",
    "decode_interaction",
    "decode_profile",
]

MAX_VALUE_BYTES = 65_536

#: Program id → (metric, lowest answer, highest answer): the programs a survey response may
#: name (`cxstream.core.programs.scales` of the registry).
Scales: TypeAlias = Mapping[str, tuple[SurveyKind, int, int]]

#: The names of the fields the contracts define: a reason may name one of these keys, but
#: never an unknown one (its name could be anything).
_FIELD_NAMES = frozenset({
    "event_id", "customer_id", "survey", "score", "occurred_at", "segment", "touchpoint",
    "channel", "comment", "interaction_id", "kind", "outcome", "updated_at", "owner", "name",
    "email", "slack"})

# String fields, see `Spec`.
_SURVEY_STRINGS: Spec = (
    ("event_id", True, 1, ID_MAX, False),
    ("customer_id", True, 1, ID_MAX, False),
    ("touchpoint", False, 1, LABEL_MAX, False),
    ("channel", False, 1, LABEL_MAX, False),
    ("comment", False, 0, COMMENT_MAX, True),
    ("interaction_id", False, 1, ID_MAX, False),
)
_INTERACTION_STRINGS: Spec = (
    ("event_id", True, 1, ID_MAX, False),
    ("customer_id", True, 1, ID_MAX, False),
    ("kind", True, 1, LABEL_MAX, False),
    ("touchpoint", False, 1, LABEL_MAX, False),
    ("channel", False, 1, LABEL_MAX, False),
    ("outcome", False, 1, LABEL_MAX, False),
)
_OWNER_STRINGS: Spec = (
    ("name", False, 1, NAME_MAX, False),
    ("email", False, EMAIL_MIN, EMAIL_MAX, False),
    ("slack", False, 1, NAME_MAX, False),
)
#: The strings of a profile as `strings_clean` sees them: the customer id, then the owner's.
_PROFILE_TEXTS: Spec = (("customer_id", True, 1, ID_MAX, False),
                        *((f"owner.{name}", req, low, high, free)
                          for name, req, low, high, free in _OWNER_STRINGS))
#: An unknown_survey reason lists the known programs when there are at most this many and
#: their ids fit in `_LISTED_CHARS` characters; else it counts them.
_LISTED, _LISTED_CHARS = 8, 120


#: The codes that rank above duplicate_key, and itself.
_NOT_AFTER_DUPLICATES = frozenset({E.TOO_LARGE, E.NOT_JSON, E.NOT_OBJECT, E.DUPLICATE_KEY})


# -- the phases shared by all events -----------------------------------------------------------
def _load(raw: Any) -> dict[str, Any] | Rejection:
    """TOO_LARGE, NOT_JSON, NOT_OBJECT. `raw` is typed Any: the decoders never raise, even
    on an argument that is not bytes (the compiled core would check the type first)."""
    if type(raw) is not bytes:
        return Rejection(E.NOT_JSON, f"the value must be bytes, got {type(raw).__name__}")
    if len(raw) > MAX_VALUE_BYTES:
        return Rejection(E.TOO_LARGE,
                         f"value is {len(raw)} bytes, over the {MAX_VALUE_BYTES}-byte limit")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:  # the message names the problem, not the content
        return Rejection(E.NOT_JSON, f"not valid UTF-8 JSON: {exc.msg} at byte {exc.pos}")
    if type(doc) is not dict:
        return Rejection(E.NOT_OBJECT, f"expected a JSON object, got {json_type(doc)}")
    return doc


# duplicate_key ranks right after not_object, but it is checked last: on the way out of a
# valid document, where the fields already checked save most of a walk of the document
# (`_survey`, `_interaction`), and for a rejected one in `_ranked`, which parses it again
# (rejections are rare).
def _ranked(raw: Any, rejection: Any) -> Rejection:
    """DUPLICATE_KEY instead of `rejection` when the document repeats a key and
    `rejection`'s rule ranks below that one."""
    if rejection.code in _NOT_AFTER_DUPLICATES:
        return rejection
    return _duplicate(raw) if repeats_a_key(raw, orjson.loads(raw)) else rejection


def _duplicate(raw: bytes) -> Rejection:
    key = repeated_key(raw)
    which = f"the key {key!r}" if key in _FIELD_NAMES else "a key"
    return Rejection(E.DUPLICATE_KEY, f"{which} appears more than once in one object; "
                     "send each key once (JSON parsers disagree on which copy wins)")


def _kept_if_known(doc: dict[str, Any], spec: Spec, values: list[Any], strings_too: int,
                   numbers: int, segment: Any) -> int:
    """`kept_strings(doc)` of a document that passed every rule, known without a walk when
    it holds no key but its string fields `spec` (`values`, as checked), `strings_too`
    other string fields and `numbers` number fields (all present) and its segment (None or
    a dict of strings); else -1. A null field is a key without a string."""
    keys = strings = 0
    for at, value in enumerate(values):
        if value is not None:
            keys += 1
            strings += 1
        elif spec[at][0] in doc:
            keys += 1
    if segment is not None or "segment" in doc:
        keys += 1
    if len(doc) != keys + strings_too + numbers:
        return -1  # unknown keys, whose values are not known
    return len(doc) + strings + strings_too + (2 * len(segment) if segment else 0)


def _repeats(raw: bytes, doc: dict[str, Any], spec: Spec, values: list[Any], strings_too: int,
             numbers: int, segment: Any) -> bool:
    """DUPLICATE_KEY's test for a document that passed every other rule."""
    kept = _kept_if_known(doc, spec, values, strings_too, numbers, segment)
    return repeats_a_key_of(raw, kept if kept >= 0 else kept_strings(doc))


# -- the events --------------------------------------------------------------------------------
def decode_survey(raw: Any, key: bytes | None, now_ms: int,
                 min_ms: int = DEFAULT_MIN_EVENT_MS,
                 scales: Scales | None = None) -> SurveyResponse | Rejection:
    """A survey response (schemas/survey-response.schema.json), or why not. `scales` are
    the programs `survey` may name (`programs.scales(registry)`; None: the built-in ones);
    the response's `survey` is then its program's metric, and `program` the program id."""
    try:
        if type(raw) is not bytes and isinstance(raw, (bytearray, memoryview)):
            raw = bytes(raw)
        # A dict is read directly by the compiled code (`programs.scales` gives one); any
        # other mapping is copied, on every call.
        table = BUILTIN_SCALES if scales is None else (
            scales if isinstance(scales, dict) else dict(scales))
        result = _survey(raw, key, now_ms, min_ms, table)
        # A compiled class: the cheapest test (Rejection's module is not compiled).
        return result if type(result) is SurveyResponse else _ranked(raw, result)
    except Exception as exc:  # noqa: BLE001
        return guarded(exc)


def decode_interaction(raw: Any, key: bytes | None, now_ms: int,
                      min_ms: int = DEFAULT_MIN_EVENT_MS) -> Interaction | Rejection:
    """An interaction (schemas/interaction.schema.json), or why not."""
    try:
        if type(raw) is not bytes and isinstance(raw, (bytearray, memoryview)):
            raw = bytes(raw)
        result = _interaction(raw, key, now_ms, min_ms)
        # A compiled class: the cheapest test (Rejection's module is not compiled).
        return result if type(result) is Interaction else _ranked(raw, result)
    except Exception as exc:  # noqa: BLE001
        return guarded(exc)


def decode_profile(raw: Any, key: bytes | None, now_ms: int,
                  min_ms: int = DEFAULT_MIN_EVENT_MS) -> CustomerProfile | Rejection:
    """A customer profile (schemas/customer-profile.schema.json), or why not."""
    try:
        if type(raw) is not bytes and isinstance(raw, (bytearray, memoryview)):
            raw = bytes(raw)
        result = _profile(raw, key, now_ms, min_ms)
        # A compiled class: the cheapest test (Rejection's module is not compiled).
        return result if type(result) is CustomerProfile else _ranked(raw, result)
    except Exception as exc:  # noqa: BLE001
        return guarded(exc)


def _survey(raw: Any, key: bytes | None, now_ms: int, min_ms: int,
            scales: dict[str, tuple[SurveyKind, int, int]]) -> SurveyResponse | Rejection:
    doc = _load(raw)
    if isinstance(doc, Rejection):
        return doc
    get = doc.get
    strings: list[Any] = [get("event_id"), get("customer_id"), get("touchpoint"),
                          get("channel"), get("comment"), get("interaction_id")]
    survey, score, occurred_at = get("survey"), get("score"), get("occurred_at")
    segment = get("segment")
    clean_strings = strings_ok(_SURVEY_STRINGS, strings)
    clean_segment = segment is None or segment_ok(segment)
    # missing_field
    if not clean_strings and (r := strings_present(doc, _SURVEY_STRINGS, strings)) is not None:
        return r
    if survey is None:
        return missing("survey", doc)
    if score is None:
        return missing("score", doc)
    if occurred_at is None:
        return missing("occurred_at", doc)
    # wrong_type
    if not clean_strings and (r := strings_typed(_SURVEY_STRINGS, strings)) is not None:
        return r
    if type(survey) is not str:
        return wrong("survey", "a string", survey)
    if type(score) is not int:
        if type(score) is not float or not score.is_integer():
            return wrong("score", "an integer", score)
        score = int(score)
    if type(occurred_at) is not str:
        return wrong("occurred_at", "a string", occurred_at)
    if not clean_segment and (r := segment_typed(segment)) is not None:
        return r
    # invalid_value
    if not clean_strings and (r := strings_sized(_SURVEY_STRINGS, strings)) is not None:
        return r
    if not clean_segment and segment and (r := segment_sized(segment)) is not None:
        return r
    if not plain(raw) and (r := strings_clean(_SURVEY_STRINGS, strings, segment)) is not None:
        return r
    # unknown_survey, score_out_of_range
    scale = scales.get(survey)
    if scale is None:
        return _unknown_survey(survey, scales)
    metric, low, high = scale
    if not low <= score <= high:
        return _off_scale(score, survey, low, high)
    # bad_timestamp, timestamp_out_of_range, future_timestamp
    at = timestamp("occurred_at", occurred_at, now_ms, min_ms)
    if isinstance(at, Rejection):
        return at
    # key_mismatch
    event_id, customer_id, touchpoint, channel, comment, interaction_id = strings
    if (r := key_rule(key, customer_id)) is not None:
        return r
    # duplicate_key (see `_ranked`): survey and occurred_at are strings too; score is not
    if _repeats(raw, doc, _SURVEY_STRINGS, strings, 2, 1, segment):
        return _duplicate(raw)
    # The metric's own string for a built-in program: one string object for all of them.
    return SurveyResponse(event_id, customer_id, metric, score, at,
                          {} if segment is None else segment, touchpoint, channel,
                          comment, interaction_id, metric if survey == metric else survey)


def _unknown_survey(survey: str, scales: Scales) -> Rejection:
    """UNKNOWN_SURVEY: which programs there are (their ids are configuration), never the
    value sent (input: it could be anything)."""
    known = sorted(scales)
    listed = ", ".join(known)
    if len(known) <= _LISTED and len(listed) <= _LISTED_CHARS:
        which = f"{len(known)} known: {listed}" if known else "none known"
    else:
        which = f"{len(known)} programs known"
    if program_id(survey):
        return Rejection(E.UNKNOWN_SURVEY, f"'survey' names no known survey program ({which}): "
                         "send a known id, or define the program in the registry "
                         "(CXSTREAM_SURVEYS) and restart the workers")
    return Rejection(E.UNKNOWN_SURVEY, "'survey' is not a survey program id (1..64 characters "
                     f"of a-z, 0-9, - and _, starting with a letter; {which}): fix the producer")


def _off_scale(score: int, program: str, low: int, high: int) -> Rejection:
    """SCORE_OUT_OF_RANGE, naming the program (a known id) and its scale."""
    shown = f"score {score}" if -1_000_000 < score < 1_000_000 else "score"
    return Rejection(E.SCORE_OUT_OF_RANGE, f"{shown} is outside the scale: {program} answers "
                     f"are integers {low}..{high} (answers on another scale need a program "
                     "of their own in CXSTREAM_SURVEYS)")


def _interaction(raw: Any, key: bytes | None, now_ms: int, min_ms: int
                 ) -> Interaction | Rejection:
    doc = _load(raw)
    if isinstance(doc, Rejection):
        return doc
    get = doc.get
    strings: list[Any] = [get("event_id"), get("customer_id"), get("kind"), get("touchpoint"),
                          get("channel"), get("outcome")]
    occurred_at, segment = get("occurred_at"), get("segment")
    clean_strings = strings_ok(_INTERACTION_STRINGS, strings)
    clean_segment = segment is None or segment_ok(segment)
    # missing_field
    if not clean_strings and (r := strings_present(doc, _INTERACTION_STRINGS, strings)) is not None:
        return r
    if occurred_at is None:
        return missing("occurred_at", doc)
    # wrong_type
    if not clean_strings and (r := strings_typed(_INTERACTION_STRINGS, strings)) is not None:
        return r
    if type(occurred_at) is not str:
        return wrong("occurred_at", "a string", occurred_at)
    if not clean_segment and (r := segment_typed(segment)) is not None:
        return r
    # invalid_value
    if not clean_strings and (r := strings_sized(_INTERACTION_STRINGS, strings)) is not None:
        return r
    if not clean_segment and segment and (r := segment_sized(segment)) is not None:
        return r
    if not plain(raw) and (r := strings_clean(_INTERACTION_STRINGS, strings,
                                              segment)) is not None:
        return r
    # bad_timestamp, timestamp_out_of_range, future_timestamp
    at = timestamp("occurred_at", occurred_at, now_ms, min_ms)
    if isinstance(at, Rejection):
        return at
    # key_mismatch
    event_id, customer_id, kind, touchpoint, channel, outcome = strings
    if (r := key_rule(key, customer_id)) is not None:
        return r
    # duplicate_key (see `_ranked`): occurred_at is a string too
    if _repeats(raw, doc, _INTERACTION_STRINGS, strings, 1, 0, segment):
        return _duplicate(raw)
    return Interaction(event_id, customer_id, at, kind, touchpoint, channel, outcome,
                       {} if segment is None else segment)


def _profile(raw: Any, key: bytes | None, now_ms: int, min_ms: int
             ) -> CustomerProfile | Rejection:
    doc = _load(raw)
    if isinstance(doc, Rejection):
        return doc
    get = doc.get
    customer_id, segment, updated_at = get("customer_id"), get("segment"), get("updated_at")
    owner, value = get("owner"), get("value")
    # missing_field
    if customer_id is None:
        return missing("customer_id", doc)
    if segment is None:
        return missing("segment", doc)
    if updated_at is None:
        return missing("updated_at", doc)
    # wrong_type
    if type(customer_id) is not str:
        return wrong("customer_id", "a string", customer_id)
    if (r := segment_typed(segment)) is not None:
        return r
    if type(updated_at) is not str:
        return wrong("updated_at", "a string", updated_at)
    owner_strings: list[Any] = []
    if owner is not None:
        if type(owner) is not dict:
            return wrong("owner", "an object", owner)
        owner_strings = [owner.get("name"), owner.get("email"), owner.get("slack")]
        if (r := strings_typed(_OWNER_STRINGS, owner_strings, "owner.")) is not None:
            return r
    if value is not None and (r := value_typed(value)) is not None:
        return r
    # invalid_value
    if not 1 <= len(customer_id) <= ID_MAX:
        return length("customer_id", 1, ID_MAX, len(customer_id))
    if segment and (r := segment_sized(segment)) is not None:
        return r
    if owner is not None:
        if (r := strings_sized(_OWNER_STRINGS, owner_strings, "owner.")) is not None:
            return r
        if owner_strings[1] is not None and (r := email_shape(owner_strings[1])) is not None:
            return r
    if value is not None and (r := value_valid(value)) is not None:
        return r
    if not plain(raw) and (r := strings_clean(_PROFILE_TEXTS, [customer_id, *owner_strings],
                                              segment)) is not None:
        return r
    # bad_timestamp, timestamp_out_of_range, future_timestamp
    at = timestamp("updated_at", updated_at, now_ms, min_ms)
    if isinstance(at, Rejection):
        return at
    # key_mismatch
    if (r := key_rule(key, customer_id)) is not None:
        return r
    if repeats_a_key(raw, doc):  # duplicate_key (see `_ranked`)
        return _duplicate(raw)
    return CustomerProfile(customer_id, segment, at,
                           None if owner is None else Owner(*owner_strings),
                           None if value is None else value_kept(value))
