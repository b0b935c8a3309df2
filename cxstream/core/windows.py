"""Windows, buckets and stream time — all in integer milliseconds.

Rolling windows are answered from tumbling buckets at three resolutions (minute, hour,
UTC day). Each response is added to its three buckets, so the write cost does not depend on
the window length; a query covers [T − W, T) with the fewest aligned buckets, so its read
cost is bounded (≤ 59 + 23 + W/1d + 23 + 59 buckets per segment and partition).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000
RESOLUTIONS = (MINUTE, HOUR, DAY)
_UNITS = {"s": 1000, "m": MINUTE, "h": HOUR, "d": DAY, "w": 7 * DAY}
_DURATION = re.compile(r"(\d+)([smhdw])\Z")


@dataclass(frozen=True, slots=True)
class Window:
    name: str  # as configured, e.g. "7d": the API's `window` parameter
    ms: int


def parse_duration(text: str) -> int:
    """`90s`, `15m`, `1h`, `7d`, `2w` → milliseconds."""
    m = _DURATION.match(text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 1h, 7d or 2w")
    value = int(m.group(1)) * _UNITS[m.group(2)]
    if value <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    return value


def parse_windows(text: str) -> tuple[Window, ...]:
    """A comma-separated list of whole-minute durations, e.g. `1h,24h,7d,30d`."""
    windows: list[Window] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        ms = parse_duration(part)
        if ms % MINUTE:
            raise ValueError(f"window {part!r} must be a whole number of minutes")
        if any(w.name == part or w.ms == ms for w in windows):
            raise ValueError(f"window {part!r} is listed twice")
        windows.append(Window(part, ms))
    if not windows:
        raise ValueError("at least one window is needed, e.g. 1h,24h,7d,30d")
    return tuple(windows)


def floor_minute(ms: int) -> int:
    return ms - ms % MINUTE


def bucket_keys_for(occurred_at: int) -> tuple[tuple[int, int], ...]:
    """The (resolution, start) of the three buckets an event counts in."""
    return tuple((res, occurred_at - occurred_at % res) for res in RESOLUTIONS)


def cover(start: int, end: int) -> list[tuple[int, int]]:
    """The fewest aligned buckets whose union is exactly [start, end) (whole minutes)."""
    if start % MINUTE or end % MINUTE:
        raise ValueError("window bounds must be whole minutes")
    pieces: list[tuple[int, int]] = []
    t = start
    while t < end:
        for res in (DAY, HOUR, MINUTE):
            if t % res == 0 and t + res <= end:
                pieces.append((res, t))
                t += res
                break
    return pieces


def horizon_ms(windows: tuple[Window, ...], grace_ms: int) -> int:
    """How far behind stream time a response may be and still change some window."""
    return max(w.ms for w in windows) + grace_ms


def is_too_late(occurred_at: int, stream_time: int, horizon: int) -> bool:
    """Stream time, not the wall clock, decides lateness (replays behave like live traffic)."""
    return occurred_at < stream_time - horizon
