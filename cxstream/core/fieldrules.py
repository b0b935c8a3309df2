"""The rules for single fields that the decoders (`cxstream.core.decode`) share, each with
its dead-letter code and a reason that names the field and the rule, never its value.

Split out of `decode` to keep each module small; `decode` documents the order in which the
rules apply and what a document must be. Pure: no I/O, no clock, no logging.
"""

from __future__ import annotations

import re
from typing import Any, Final

from cxstream.core.errors import ErrorCode as E
from cxstream.core.errors import Rejection
from cxstream.core.timefmt import MAX_MS, MIN_MS, format_rfc3339, instant_of

MAX_FUTURE_SKEW_MS: Final = 300_000
#: 2000-01-01T00:00:00Z, the default earliest timestamp (`CXSTREAM_MIN_EVENT_TIME`): earlier
#: ones are nearly always a producer's zero or default date, not a real event.
DEFAULT_MIN_EVENT_MS: Final = 946_684_800_000

ID_MAX = 128
LABEL_MAX = 64
COMMENT_MAX = 4000
NAME_MAX = 128
EMAIL_MIN, EMAIL_MAX = 3, 254
SEGMENT_MAX_DIMENSIONS = 16
DIMENSION_NAME_MAX = 64
DIMENSION_VALUE_MAX = 128

_DIMENSION_NAME = re.compile(r"[a-z][a-z0-9_]*")  # used with fullmatch: no `$` newline quirk
#: What a survey program id looks like (with at most LABEL_MAX characters, `program_id`):
#: it becomes a response's `survey` value, a metric label, a query parameter and a TOML key,
#: so it is kept to characters that need no quoting in any.
PROGRAM_ID: Final = re.compile(r"[a-z][a-z0-9_-]*")
#: Dimension names already found valid: a stream uses a handful, and the regex would
#: otherwise run for each one of every event. Bounded: once full, names are just not added.
_GOOD_NAMES: set[str] = set()
_GOOD_NAMES_MAX = 1024
# Control characters (C0, DEL, C1) and the line and paragraph separators: with them, every
# character str.splitlines() splits on. Free text keeps tab, LF and CR.
_LINE_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_TEXT_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
_EMAIL_FORBIDDEN = re.compile("[\x00-\x20\x7f-\x9f\u2028\u2029]")  # and the space
# The UTF-8 of U+0080..U+009F and of U+2028/U+2029 (literal prefixes: fast searches).
_C1_UTF8 = re.compile(b"\xc2[\x80-\x9f]")
_SEPARATORS_UTF8 = re.compile(b"\xe2\x80[\xa8\xa9]")

# String fields: (name, required, min length, max length, free text). Order = order of the
# reasons. Free text may hold line breaks; the others are single-line.
Spec = tuple[tuple[str, bool, int, int, bool], ...]


# -- reasons -----------------------------------------------------------------------------------
def program_id(value: str) -> bool:
    """Whether `value` is a survey program id: 1..LABEL_MAX characters of a-z, 0-9, - and
    _, starting with a letter."""
    return len(value) <= LABEL_MAX and PROGRAM_ID.fullmatch(value) is not None


def json_type(value: Any) -> str:
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


def missing(name: str, doc: dict[str, Any]) -> Rejection:
    how = "is null" if name in doc else "is missing"
    return Rejection(E.MISSING_FIELD, f"required field {name!r} {how}")


def wrong(name: str, expected: str, value: Any) -> Rejection:
    return Rejection(E.WRONG_TYPE, f"{name!r} must be {expected}, got {json_type(value)}")


def length(name: str, low: int, high: int, got: int) -> Rejection:
    return Rejection(E.INVALID_VALUE, f"{name!r} must be {low}..{high} characters long, got {got}")


# -- fields -----------------------------------------------------------------------------------
def plain(raw: Any) -> bool:
    """True when no string of the JSON text `raw` can hold a character the text rules
    refuse, decided on the bytes without looking at the fields: no backslash (JSON writes
    C0 characters only escaped, and escapes can spell anything), no DEL, and no UTF-8 of
    U+0080..U+009F or U+2028/U+2029 (outside strings, JSON allows none of these). False
    only means the fields must be looked at."""
    # Int operands: `in` is then a memchr (a bytes operand costs several times more).
    if type(raw) is not bytes or 92 in raw or 127 in raw:
        return False
    if raw.isascii():
        return True
    return ((0xC2 not in raw or _C1_UTF8.search(raw) is None)
            and (0xE2 not in raw or _SEPARATORS_UTF8.search(raw) is None))


def strings_ok(spec: Spec, values: list[Any]) -> bool:
    """All string fields in `spec` are fine: one pass for the usual case. When it says no, the
    phase functions below (presence, type, length, in that order) find the reason."""
    for (_, required, low, high, _), value in zip(spec, values):
        if value is None:
            if required:
                return False
        elif type(value) is not str or not low <= len(value) <= high:
            return False
    return True


def strings_present(doc: dict[str, Any], spec: Spec, values: list[Any]) -> Rejection | None:
    """MISSING_FIELD for the string fields in `spec` (values: doc.get of each, same order)."""
    for (name, required, _, _, _), value in zip(spec, values):
        if value is None and required:
            return missing(name, doc)
    return None


def strings_typed(spec: Spec, values: list[Any], prefix: str = "") -> Rejection | None:
    for (name, _, _, _, _), value in zip(spec, values):
        if value is not None and type(value) is not str:
            return wrong(prefix + name, "a string", value)
    return None


def strings_sized(spec: Spec, values: list[Any], prefix: str = "") -> Rejection | None:
    for (name, _, low, high, _), value in zip(spec, values):
        if value is not None and not low <= len(value) <= high:
            return length(prefix + name, low, high, len(value))
    return None


def strings_clean(spec: Spec, values: list[Any], segment: Any) -> Rejection | None:
    """INVALID_VALUE for a control character or line separator in a string field of `spec`
    or a value of `segment` (a dict of strings, or None); free text keeps tab, LF and CR.
    The names of `spec` are the ones the reasons give."""
    # Cc, Zl and Zp are not printable: in the usual case, one check of all the one-line
    # values at once and none of them needs a regex.
    lines: list[str] = []
    for at, value in enumerate(values):
        if value is not None:
            if not spec[at][4]:  # one-line
                lines.append(value)
            elif not value.isprintable() and _TEXT_FORBIDDEN.search(value) is not None:
                return _unclean(spec, values, segment)
    if segment:
        for value in segment.values():
            lines.append(value)
    if "".join(lines).isprintable():
        return None
    return _unclean(spec, values, segment)


def _unclean(spec: Spec, values: list[Any], segment: Any) -> Rejection | None:
    """The reason for `strings_clean`, field by field, in `spec` order, then the segment."""
    for (name, _, _, _, free), value in zip(spec, values):
        if value is None:
            continue
        if not free and _LINE_FORBIDDEN.search(value) is not None:
            return Rejection(E.INVALID_VALUE, f"{name!r} must be one line without control "
                             "characters (no CR, LF, tab, U+0000..U+001F, U+007F..U+009F, "
                             "U+2028, U+2029): remove them at the producer")
        if free and _TEXT_FORBIDDEN.search(value) is not None:
            return Rejection(E.INVALID_VALUE, f"{name!r} may hold tabs and line breaks (LF, CR) "
                             "but no other control character (U+0000..U+001F, U+007F..U+009F, "
                             "U+2028, U+2029): remove them at the producer")
    for value in (segment or {}).values():
        if _LINE_FORBIDDEN.search(value) is not None:
            return Rejection(E.INVALID_VALUE, "'segment' values must be one line without control "
                             "characters (no CR, LF, tab, U+0000..U+001F, U+007F..U+009F, "
                             "U+2028, U+2029): remove them at the producer")
    return None


def email_shape(email: str) -> Rejection | None:
    """INVALID_VALUE unless `email` (of a valid length) is an address: one @ with text on
    both sides, no space, control character or line separator."""
    if (email.count("@") != 1 or email[0] == "@" or email[-1] == "@"
            or _EMAIL_FORBIDDEN.search(email) is not None):
        return Rejection(E.INVALID_VALUE, "'owner.email' must be an e-mail address: one @ "
                         "with text on both sides, no spaces or control characters")
    return None


def segment_ok(segment: Any) -> bool:
    """`segment` passes `segment_typed` and `segment_sized` (one pass for the usual case;
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


def segment_typed(segment: Any) -> Rejection | None:
    if type(segment) is not dict:
        return wrong("segment", "an object", segment)
    for value in segment.values():
        if type(value) is not str:
            return Rejection(E.WRONG_TYPE,
                             f"'segment' values must be strings, got {json_type(value)}")
    return None


def segment_sized(segment: dict[str, str]) -> Rejection | None:
    if len(segment) > SEGMENT_MAX_DIMENSIONS:
        return Rejection(E.INVALID_VALUE, f"'segment' has {len(segment)} dimensions, "
                         f"at most {SEGMENT_MAX_DIMENSIONS} are allowed")
    for name, value in segment.items():
        if not _dimension_name_ok(name):
            return Rejection(E.INVALID_VALUE, "'segment' dimension names must be "
                             f"1..{DIMENSION_NAME_MAX} characters matching ^[a-z][a-z0-9_]*$")
        if not 1 <= len(value) <= DIMENSION_VALUE_MAX:
            return Rejection(E.INVALID_VALUE, f"'segment' values must be 1..{DIMENSION_VALUE_MAX} "
                             f"characters long, got {len(value)}")
    return None


def timestamp(name: str, value: str, now_ms: int, min_ms: int) -> int | Rejection:
    """BAD_TIMESTAMP, TIMESTAMP_OUT_OF_RANGE, FUTURE_TIMESTAMP. What it returns lies in
    max(min_ms, MIN_MS)..min(now_ms + MAX_FUTURE_SKEW_MS, MAX_MS)."""
    ms = instant_of(value)
    if ms is None:
        return Rejection(E.BAD_TIMESTAMP, f"{name!r} must be an RFC 3339 date-time with an "
                         "offset or Z, e.g. 2026-10-31T12:00:00Z")
    if ms < min_ms or ms < MIN_MS:
        earliest = min_ms if MIN_MS <= min_ms <= MAX_MS else MIN_MS
        return Rejection(E.TIMESTAMP_OUT_OF_RANGE, f"{name!r} is before "
                         f"{format_rfc3339(earliest)}, the earliest time accepted "
                         "(CXSTREAM_MIN_EVENT_TIME): look for a zero or default date at the "
                         "producer")
    if ms - now_ms > MAX_FUTURE_SKEW_MS or ms > MAX_MS:
        if ms > MAX_MS and ms - now_ms <= MAX_FUTURE_SKEW_MS:  # only with a clock past 9999
            return Rejection(E.FUTURE_TIMESTAMP, f"{name!r} is after 9999-12-31T23:59:59.999Z, "
                             "the last instant cxstream can represent (check the clocks)")
        return Rejection(E.FUTURE_TIMESTAMP, f"{name!r} is {(ms - now_ms) / 1000:.3f} s ahead "
                         f"of the processing clock, more than the {MAX_FUTURE_SKEW_MS // 1000} s "
                         "allowed (check the producer's clock)")
    return ms


def key_rule(key: bytes | None, customer_id: str) -> Rejection | None:
    """KEY_MISMATCH."""
    if key is None:
        return Rejection(E.KEY_MISMATCH, "the message key must be the UTF-8 bytes of customer_id; "
                         "the message has no key")
    if key != customer_id.encode():
        return Rejection(E.KEY_MISMATCH, "the message key must be the UTF-8 bytes of customer_id; "
                         "they differ")
    return None


def guarded(exc: Exception) -> Rejection:
    # Unreachable by design (the tests look for it); a decoder bug must dead-letter one
    # message, not stop the worker. The type only: a message could quote the input.
    return Rejection(E.PROCESSING_ERROR, f"decoder error {type(exc).__name__}")


# -- a profile's value ----------------------------------------------------------------------
#: The value tiers of a profile (`cxstream.core.priority.TIERS`).
VALUE_TIERS: Final = ("strategic", "high", "standard", "low")


def _currency_ok(code: str) -> bool:
    return len(code) == 3 and all("A" <= ch <= "Z" for ch in code)


def value_typed(value: Any) -> Rejection | None:
    """wrong_type of a profile's `value` object and its fields (null fields: absent)."""
    if type(value) is not dict:
        return wrong("value", "an object", value)
    tier, arr, currency = value.get("tier"), value.get("arr"), value.get("currency")
    if tier is not None and type(tier) is not str:
        return wrong("value.tier", "a string", tier)
    if arr is not None and type(arr) is not int and type(arr) is not float:
        return wrong("value.arr", "a number", arr)
    if currency is not None and type(currency) is not str:
        return wrong("value.currency", "a string", currency)
    return None


def value_valid(value: dict[str, Any]) -> Rejection | None:
    """invalid_value of a typed `value`: a known tier, arr >= 0 with a currency, a currency
    of three upper-case letters (ISO 4217)."""
    tier, arr, currency = value.get("tier"), value.get("arr"), value.get("currency")
    if tier is not None and tier not in VALUE_TIERS:
        return Rejection(E.INVALID_VALUE, "'value.tier' must be strategic, high, standard "
                                          "or low")
    if arr is not None:
        if not arr >= 0:
            return Rejection(E.INVALID_VALUE, "'value.arr' must be 0 or more")
        if currency is None:
            return Rejection(E.INVALID_VALUE, "'value.arr' needs 'value.currency'")
    if currency is not None and not _currency_ok(currency):
        return Rejection(E.INVALID_VALUE, "'value.currency' must be three upper-case letters "
                                          "(ISO 4217)")
    return None


def value_kept(value: dict[str, Any]) -> dict[str, Any] | None:
    """What is kept of a valid `value`: its known fields that are set; None when none is."""
    kept = {name: value[name] for name in ("tier", "arr", "currency")
            if value.get(name) is not None}
    return kept or None
