"""RFC 3339 timestamps ↔ integer epoch milliseconds (UTC).

Strict on purpose: an offset (or `Z`) is required, because a timestamp without one means
different instants to different producers, and windows would silently shift.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z"
)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_rfc3339(value: str) -> int | None:
    """Epoch milliseconds of an RFC 3339 date-time, or None if it is not one (never raises).

    Fractions are floored to the millisecond; leap seconds (`:60`) are rejected.
    """
    if not isinstance(value, str) or len(value) > 40:
        return None
    m = _RFC3339.match(value)
    if m is None:
        return None
    y, mo, d, h, mi, s, frac, z, sign, oh, om = m.groups()
    hour, minute, second = int(h), int(mi), int(s)
    if hour > 23 or minute > 59 or second > 59:
        return None
    try:
        days = date(int(y), int(mo), int(d)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    offset = 0
    if z is None:
        off_h, off_m = int(oh), int(om)
        if off_h > 23 or off_m > 59:
            return None
        offset = (off_h * 60 + off_m) * (1 if sign == "+" else -1)
    ms = int((frac or "0")[:3].ljust(3, "0"))
    return (((days * 24 + hour) * 60 + minute - offset) * 60 + second) * 1000 + ms


def format_rfc3339(ms: int) -> str:
    """UTC `YYYY-MM-DDTHH:MM:SS[.mmm]Z` (milliseconds only when not zero)."""
    seconds, millis = divmod(int(ms), 1000)
    text = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"
