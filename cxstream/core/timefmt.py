"""RFC 3339 timestamps ↔ integer epoch milliseconds (UTC).

Strict on purpose: an offset (or `Z`) is required, because a timestamp without one means
different instants to different producers, and windows would silently shift.

Accepted: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` with ASCII digits only, `T`/`t` and
`Z`/`z`, a fraction of any length (floored to the millisecond), years 0001..9999, real
calendar dates, hours 00..23, minutes and seconds 00..59 (leap seconds are rejected), offsets
up to ±23:59. This is exactly what `schemas/*.schema.json` accept for `date-time` fields
(the jsonschema package's `format: date-time` check plus the schemas' ASCII pattern), which
`tests/unit/core/test_schemas.py` checks.

Pure: no clock reads, no I/O.
"""

from __future__ import annotations

import re
from datetime import date

__all__ = ["parse_rfc3339", "format_rfc3339", "MIN_MS", "MAX_MS"]

# `[0-9]`, not `\d`: in Python `\d` also matches other scripts' digits (e.g. "２"), which
# int() would happily convert. Callers use fullmatch(), so no trailing newline slips through
# the way it does past `$`. Ranges of hour, minute, second and offset are in the pattern; the
# calendar (month 13, February 30, year 0) is left to date.fromisoformat.
_RFC3339 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt]([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9])"
    r"(?:\.([0-9]+))?(?:[Zz]|([+-])([01][0-9]|2[0-3]):([0-5][0-9]))"
)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAY_MS = 86_400_000

#: The representable range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z.
MIN_MS = (date(1, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY_MS
MAX_MS = (date(9999, 12, 31).toordinal() - _EPOCH_ORDINAL + 1) * _DAY_MS - 1


def parse_rfc3339(value: str) -> int | None:
    """Epoch milliseconds (UTC) of an RFC 3339 date-time, or None if it is not one.

    Never raises, whatever it is given (non-strings give None).
    """
    if type(value) is not str:
        return None
    m = _RFC3339.fullmatch(value)
    if m is None:
        return None
    ymd, hour, minute, second, frac, sign, off_h, off_m = m.groups()
    try:
        days = date.fromisoformat(ymd).toordinal() - _EPOCH_ORDINAL
    except ValueError:  # year 0000, month 13, February 30, ...
        return None
    minutes = days * 1440 + int(hour) * 60 + int(minute)
    if sign is not None:
        offset = int(off_h) * 60 + int(off_m)
        minutes = minutes - offset if sign == "+" else minutes + offset
    ms = 0 if frac is None else int((frac + "00")[:3])
    return minutes * 60_000 + int(second) * 1000 + ms


def format_rfc3339(ms: int) -> str:
    """UTC `YYYY-MM-DDTHH:MM:SSZ`, or `YYYY-MM-DDTHH:MM:SS.mmmZ` when milliseconds are not 0.

    `parse_rfc3339(format_rfc3339(ms)) == ms` for every ms in MIN_MS..MAX_MS; outside that
    range (years before 1 or after 9999) it raises ValueError.
    """
    ms = int(ms)
    if not MIN_MS <= ms <= MAX_MS:
        raise ValueError(f"{ms} ms is outside the RFC 3339 year range 0001..9999")
    days, rest = divmod(ms, _DAY_MS)
    day = date.fromordinal(days + _EPOCH_ORDINAL)
    seconds, millis = divmod(rest, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    text = f"{day.year:04d}-{day.month:02d}-{day.day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"
