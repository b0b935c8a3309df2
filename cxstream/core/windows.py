"""Windows, buckets and stream time — all in integer milliseconds.

Rolling windows are answered from tumbling buckets at three resolutions (minute, hour,
UTC day). Each response is added to its three buckets, so the write cost does not depend on
the window length; a query covers [T − W, T) with the fewest aligned buckets, so its read
cost is bounded (≤ 59 + 23 + W/1d + 23 + 59 buckets per partition; each bucket holds every
segment, see `cxstream.core.buckets`).

Days are aligned on the Unix epoch, i.e. they are UTC days (epoch ms has no leap seconds).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

__all__ = ["DAY", "HOUR", "MINUTE", "RESOLUTIONS", "Window", "bucket_keys_for", "cover",
           "cover_bound", "expired_before", "floor_minute", "horizon_ms", "is_too_late",
           "parse_duration", "parse_windows"]

MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000
#: Bucket resolutions, finest first; each divides the next, which is what makes `cover` exact.
RESOLUTIONS: tuple[int, ...] = (MINUTE, HOUR, DAY)
_UNITS = {"s": 1000, "m": MINUTE, "h": HOUR, "d": DAY, "w": 7 * DAY}
# ASCII digits only: `\d` would also accept e.g. Arabic-Indic digits, which int() parses.
_DURATION = re.compile(r"([0-9]+)([a-zA-Z]*)\Z")


@dataclass(frozen=True, slots=True)
class Window:
    """A configured rolling window; `name` is as configured (e.g. "7d"), the API's `window`."""

    name: str
    ms: int

    def __post_init__(self) -> None:
        # Bucket bounds are whole minutes, so only whole-minute windows can be answered exactly.
        if self.ms <= 0 or self.ms % MINUTE:
            raise ValueError(f"window {self.name!r} must be a positive whole number of minutes")


def parse_duration(text: str) -> int:
    """`90s`, `15m`, `1h`, `7d`, `2w` → milliseconds (a positive integer count and one unit)."""
    if not isinstance(text, str):
        raise ValueError(f"a duration must be text like 15m, 1h or 7d, got {type(text).__name__}")
    stripped = text.strip()
    m = _DURATION.match(stripped)
    if m is None:
        raise ValueError(f"{text!r} is not a duration: expected a whole number and a unit, "
                         "e.g. 90s, 15m, 1h, 7d or 2w")
    number, unit = m.groups()
    if not unit:
        raise ValueError(f"{text!r} has no unit: use s, m, h, d or w (e.g. {number}m)")
    if unit not in _UNITS:
        raise ValueError(f"{text!r} has an unknown unit {unit!r}: use s, m, h, d or w "
                         "(lower case)")
    value = int(number) * _UNITS[unit]
    if value <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    return value


def parse_windows(text: str) -> tuple[Window, ...]:
    """A comma-separated list of whole-minute durations, e.g. `1h,24h,7d,30d`, in the given
    order; two names for the same length (24h, 1d) are refused as a likely mistake."""
    windows: list[Window] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        ms = parse_duration(part)
        if ms % MINUTE:
            raise ValueError(f"window {part!r} must be a whole number of minutes")
        for w in windows:
            if w.ms == ms:
                raise ValueError(f"window {part!r} is listed twice"
                                 + ("" if w.name == part else f" (as {w.name!r})"))
        windows.append(Window(part, ms))
    if not windows:
        raise ValueError("at least one window is needed, e.g. 1h,24h,7d,30d")
    return tuple(windows)


def floor_minute(ms: int) -> int:
    """The whole minute at or before `ms`: the instants at which windows are exact."""
    return ms - ms % MINUTE


def bucket_keys_for(occurred_at: int) -> tuple[tuple[int, int], ...]:
    """The (resolution, start) of the three buckets an event counts in: one per resolution,
    whatever the configured windows, so the write cost does not grow with them."""
    return tuple((res, occurred_at - occurred_at % res) for res in RESOLUTIONS)


def cover(start: int, end: int) -> list[tuple[int, int]]:
    """The fewest aligned buckets whose union is exactly [start, end) (whole minutes), as
    (resolution, bucket_start) in time order.

    Greedy from the left is minimal because each resolution divides the next: at any point
    the largest aligned bucket that fits can never prevent a later, larger one.
    """
    if start % MINUTE or end % MINUTE:
        raise ValueError("window bounds must be whole minutes")
    if start > end:
        raise ValueError(f"window start {start} is after its end {end}")
    pieces: list[tuple[int, int]] = []
    t = start
    while t < end:
        for res in (DAY, HOUR, MINUTE):
            if t % res == 0 and t + res <= end:
                pieces.append((res, t))
                t += res
                break
    return pieces


def cover_bound(window_ms: int) -> int:
    """Most buckets `cover` can return for a window of this length: 59 minutes and 23 hours
    at each edge plus the whole days (read cost of one segment and partition)."""
    return 2 * 59 + 2 * 23 + window_ms // DAY


def horizon_ms(windows: Iterable[Window], grace_ms: int) -> int:
    """How far behind stream time a response may be and still change some window."""
    lengths = [w.ms for w in windows]
    if not lengths:
        raise ValueError("at least one window is needed")
    if grace_ms < 0:
        raise ValueError("grace must not be negative")
    return max(lengths) + grace_ms


def is_too_late(occurred_at: int, stream_time: int, horizon: int) -> bool:
    """Stream time, not the wall clock, decides lateness (replays behave like live traffic).
    Exactly `horizon` behind is still on time."""
    return occurred_at < stream_time - horizon


def expired_before(stream_time: int, horizon: int) -> int:
    """Buckets whose end is at or before this instant can be deleted.

    Safe because a response that could still land in such a bucket would be older than
    stream time − horizon, i.e. too late; and every window within retention
    (start ≥ stream time − horizon) is covered only by buckets ending after it.
    """
    return stream_time - horizon
