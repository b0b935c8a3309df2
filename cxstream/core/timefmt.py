"""RFC 3339 timestamps ↔ integer epoch milliseconds (UTC).

Strict on purpose: an offset (or `Z`) is required, because a timestamp without one means
different instants to different producers, and windows would silently shift.

Accepted: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` with ASCII digits only, `T`/`t` and
`Z`/`z`, a fraction of any length (floored to the millisecond), years 0001..9999, real
calendar dates, hours 00..23, minutes and seconds 00..59 (leap seconds are rejected), offsets
up to ±23:59. This is exactly what `schemas/*.schema.json` accept for `date-time` fields
(the jsonschema package's `format: date-time` check plus the schemas' ASCII pattern), which
`tests/unit/core/test_schemas.py` checks.

`parse_rfc3339` also requires the instant itself, once its offset is applied, to be
representable (`MIN_MS..MAX_MS`, years 0001..9999 in UTC): `0001-01-01T00:30:00+01:00` is a
valid text for a year-0 instant, which `format_rfc3339` (alerts, the HTTP API) would refuse.
`instant_of` gives such instants anyway, for a caller that reports them apart (the decoder).

Pure: no clock reads, no I/O.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Final

__all__ = ["parse_rfc3339", "instant_of", "format_rfc3339", "MIN_MS", "MAX_MS"]

# `[0-9]`, not `\d`: in Python `\d` also matches other scripts' digits (e.g. "２"), which
# int() would happily convert. Callers use fullmatch(), so no trailing newline slips through
# the way it does past `$`. Ranges of hour, minute, second and offset are in the pattern; the
# calendar (month 13, February 30, year 0) is left to date.fromisoformat. The first group is
# everything up to the minute ("YYYY-MM-DDTHH:MM"), the part `_minute_of` caches.
_RFC3339 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]):([0-5][0-9])"
    r"(?:\.([0-9]+))?(?:[Zz]|([+-])([01][0-9]|2[0-3]):([0-5][0-9]))"
)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAY_MS = 86_400_000
#: Minutes since the epoch of recently seen "YYYY-MM-DDTHH:MM" prefixes: events of a stream
#: share their minute far more often than not, and the calendar arithmetic is most of the
#: cost of a parse. Emptied when full, so it stays small.
_MINUTES: dict[str, int] = {}
_MINUTES_MAX = 4096
#: Two and three ASCII digits → their value: checks and converts in one lookup.
_SECONDS = {f"{n:02d}": n for n in range(60)}
_MILLIS = {f"{n:03d}": n for n in range(1000)}

#: The representable range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z (literals, so
#: the compiled core reads them as constants; the asserts show where they come from).
MIN_MS: Final = -62_135_596_800_000
MAX_MS: Final = 253_402_300_799_999
assert MIN_MS == (date(1, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY_MS
assert MAX_MS == (date(9999, 12, 31).toordinal() - _EPOCH_ORDINAL + 1) * _DAY_MS - 1


def parse_rfc3339(value: object) -> int | None:
    """Epoch milliseconds (UTC) of an RFC 3339 date-time, or None if it is not one or its
    instant is outside `MIN_MS..MAX_MS` (so `format_rfc3339` accepts every value it gives).

    Never raises, whatever it is given (non-strings give None).
    """
    ms = instant_of(value)
    if ms is None or not MIN_MS <= ms <= MAX_MS:
        return None
    return ms


def instant_of(value: object) -> int | None:
    """Like `parse_rfc3339`, but an instant outside `MIN_MS..MAX_MS` is returned as it is:
    the offset of a valid text can carry it up to a day beyond years 0001..9999. Only for
    callers that check the range themselves. Never raises (non-strings give None)."""
    if type(value) is not str:
        return None
    if (ms := _parse_usual(value)) is not None:
        return ms
    m = _RFC3339.fullmatch(value)
    if m is None:
        return None
    to_minute, second, frac, sign, off_h, off_m = m.groups()
    minutes = _MINUTES.get(to_minute)
    if minutes is None:
        minutes = _minute_of(to_minute)
        if minutes is None:
            return None
    if sign is not None:
        offset = int(off_h) * 60 + int(off_m)
        minutes = minutes - offset if sign == "+" else minutes + offset
    if frac is None:
        ms = 0
    else:
        ms = int(frac) if len(frac) == 3 else int((frac + "00")[:3])
    return minutes * 60_000 + int(second) * 1000 + ms


def _parse_usual(value: str) -> int | None:
    """`YYYY-MM-DDTHH:MM:SSZ` or `YYYY-MM-DDTHH:MM:SS.mmmZ` in a minute `_MINUTES` knows,
    which is most timestamps of a stream, without the regex; None: anything else (the
    general path decides). Only prefixes the regex accepted are in `_MINUTES`, and the
    lookups below accept exactly the digits it does, so both paths agree."""
    n = len(value)
    if n == 24:
        if value[19] != "." or (millis := _MILLIS.get(value[20:23])) is None:
            return None
    elif n != 20:
        return None
    else:
        millis = 0
    if value[-1] not in "Zz" or value[16] != ":":
        return None
    minutes = _MINUTES.get(value[:16])
    second = _SECONDS.get(value[17:19])
    if minutes is None or second is None:
        return None
    return minutes * 60_000 + second * 1000 + millis


def _minute_of(to_minute: str) -> int | None:
    """Minutes since the epoch of a matched "YYYY-MM-DDTHH:MM" (remembered in `_MINUTES`),
    or None if the date does not exist."""
    try:
        days = date.fromisoformat(to_minute[:10]).toordinal() - _EPOCH_ORDINAL
    except ValueError:  # year 0000, month 13, February 30, ...
        return None
    minutes = days * 1440 + int(to_minute[11:13]) * 60 + int(to_minute[14:16])
    if len(_MINUTES) >= _MINUTES_MAX:
        _MINUTES.clear()
    _MINUTES[to_minute] = minutes
    return minutes


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
