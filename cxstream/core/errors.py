"""The closed list of dead-letter error codes.

Every record on the dead-letter topic carries exactly one of these codes. The table of codes
in docs/concepts/dead-letters.md is checked against this enum by a unit test, so docs and
code cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ErrorCode(str, Enum):
    """Why an input message was dead-lettered (value is the wire string)."""

    NOT_JSON = "not_json"  # bytes are not valid UTF-8 JSON
    NOT_OBJECT = "not_object"  # JSON, but not an object
    TOO_LARGE = "too_large"  # value over 64 KiB
    DUPLICATE_KEY = "duplicate_key"  # an object (at any depth) has the same key twice
    MISSING_FIELD = "missing_field"  # a required field is absent
    WRONG_TYPE = "wrong_type"  # a field has the wrong JSON type
    INVALID_VALUE = "invalid_value"  # a string is empty/too long, breaks its pattern, or holds
    # a control character or line separator
    UNKNOWN_SURVEY = "unknown_survey"  # `survey` names no program of the registry
    SCORE_OUT_OF_RANGE = "score_out_of_range"  # score outside its survey's scale
    BAD_TIMESTAMP = "bad_timestamp"  # not an RFC 3339 date-time with offset or Z
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"  # before CXSTREAM_MIN_EVENT_TIME
    FUTURE_TIMESTAMP = "future_timestamp"  # more than 5 minutes ahead of the processing clock
    KEY_MISMATCH = "key_mismatch"  # Kafka key differs from the document's customer_id
    TOO_LATE = "too_late"  # older than stream time - (largest window + grace)
    PROCESSING_ERROR = "processing_error"  # an unexpected exception while handling the event
    # Bounds on what the state keeps (docs/operating/reliability.md#bounds):
    TOO_MANY_DIMENSIONS = "too_many_dimensions"  # dimensions past a cap; counted without them
    SEGMENT_VALUE_CAPPED = "segment_value_capped"  # a value went to <dimension>:other; counted
    ENTRY_TOO_LARGE = "entry_too_large"  # would make a state entry too large to write; not counted


@dataclass(frozen=True, slots=True)
class Rejection:
    """A validation failure: a code from the closed list and a human-readable reason.

    The reason names the field and the rule, never the field's value (values may be personal
    data; the raw bytes travel separately in the dead letter for replay).
    """

    code: ErrorCode
    reason: str
