"""Windows: duration parsing, lateness and expiry bounds, an event's three buckets, and
`cover` — disjoint, aligned, exact, bounded and minimal."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cxstream.core.windows import (
    DAY,
    HOUR,
    MINUTE,
    RESOLUTIONS,
    Window,
    bucket_keys_for,
    cover,
    cover_bound,
    expired_before,
    floor_minute,
    horizon_ms,
    is_too_late,
    parse_duration,
    parse_windows,
)

BASE = 1_790_000_000_000 // DAY * DAY  # a UTC midnight


@pytest.mark.parametrize("text,ms", [
    ("15m", 15 * MINUTE), ("1h", HOUR), ("24h", DAY), ("7d", 7 * DAY), ("30d", 30 * DAY),
    ("90s", 90_000), ("2w", 14 * DAY), (" 1h ", HOUR), ("001m", MINUTE),
])
def test_parse_duration(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text,message", [
    ("", "not a duration"), ("h", "not a duration"), ("1.5h", "not a duration"),
    ("-1h", "not a duration"), ("1 h", "not a duration"), ("1h30m", "not a duration"),
    ("7x", "unknown unit 'x'"), ("1H", "lower case"), ("10", "no unit"),
    ("0m", "longer than zero"), ("\u0661h", "not a duration"),  # Arabic-Indic digit one
])
def test_parse_duration_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


def test_parse_windows_default_and_order() -> None:
    ws = parse_windows("1h,24h,7d,30d")
    assert ws == (Window("1h", HOUR), Window("24h", DAY), Window("7d", 7 * DAY),
                  Window("30d", 30 * DAY))
    assert [w.name for w in parse_windows(" 30d , 15m,")] == ["30d", "15m"]


@pytest.mark.parametrize("text,message", [
    ("", "at least one window"), (" , ", "at least one window"),
    ("90s", "whole number of minutes"), ("1h,30s", "whole number of minutes"),
    ("1h,1h", "listed twice"), ("24h,1d", "listed twice \\(as '24h'\\)"),
    ("1h,7x", "unknown unit"),
])
def test_parse_windows_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_windows(text)


def test_window_must_be_whole_positive_minutes() -> None:
    for ms in (0, -MINUTE, 90_000):
        with pytest.raises(ValueError, match="whole number of minutes"):
            Window("x", ms)


def test_horizon_and_lateness() -> None:
    ws = parse_windows("1h,24h,7d,30d")
    h = horizon_ms(ws, HOUR)
    assert h == 30 * DAY + HOUR
    st_ = BASE + 40 * DAY
    assert not is_too_late(st_ - h, st_, h)          # exactly the horizon: still on time
    assert is_too_late(st_ - h - 1, st_, h)          # one millisecond more: too late
    assert not is_too_late(st_ + DAY, st_, h)        # ahead of stream time: fine
    with pytest.raises(ValueError):
        horizon_ms((), HOUR)
    with pytest.raises(ValueError):
        horizon_ms(ws, -1)
    assert horizon_ms(ws, 0) == 30 * DAY


@given(st.integers(BASE - 100 * DAY, BASE + 100 * DAY), st.integers(0, 60 * DAY),
       st.integers(MINUTE, 40 * DAY))
def test_expiry_never_deletes_a_bucket_that_can_still_change_or_be_queried(
        at: int, behind: int, horizon: int) -> None:
    stream_time = at + behind
    cutoff = expired_before(stream_time, horizon)
    if not is_too_late(at, stream_time, horizon):
        # Every bucket an on-time response writes outlives the cutoff.
        assert all(start + res > cutoff for res, start in bucket_keys_for(at))
    # Every bucket of a window within retention (start >= cutoff) outlives it too.
    first = -(-cutoff // MINUTE) * MINUTE  # earliest whole-minute window start kept
    assert all(b + res > cutoff for res, b in cover(first, first + floor_minute(horizon)))


@given(st.integers(-10 * DAY, 10**13 + 10 * DAY))
def test_an_event_has_three_aligned_buckets_containing_it(at: int) -> None:
    keys = bucket_keys_for(at)
    assert [res for res, _ in keys] == list(RESOLUTIONS) == [MINUTE, HOUR, DAY]
    for res, start in keys:
        assert start % res == 0 and start <= at < start + res
    assert keys[0][1] == floor_minute(at)


def test_buckets_are_utc_days() -> None:
    # 2026-10-31T23:59:59.999Z is still on the 31st; the next millisecond is a new day.
    last = 1_793_491_199_999
    assert bucket_keys_for(last)[2][1] == 1_793_404_800_000       # 2026-10-31T00:00Z
    assert bucket_keys_for(last + 1)[2][1] == last + 1             # 2026-11-01T00:00Z


def test_floor_minute() -> None:
    assert floor_minute(BASE + 59_999) == BASE
    assert floor_minute(BASE + MINUTE) == BASE + MINUTE
    assert floor_minute(-1) == -MINUTE


def check_cover(start: int, end: int) -> list[tuple[int, int]]:
    pieces = cover(start, end)
    t = start
    for res, bstart in pieces:  # in order, touching, hence disjoint with union [start, end)
        assert res in RESOLUTIONS and bstart % res == 0
        assert bstart == t
        t += res
    assert t == end
    assert len(pieces) <= cover_bound(end - start)
    return pieces


MINUTES = st.integers((BASE - 40 * DAY) // MINUTE, (BASE + 40 * DAY) // MINUTE)


@given(MINUTES, st.integers(0, 40 * DAY // MINUTE))
def test_cover_is_exact_disjoint_aligned_and_bounded(start_min: int, length_min: int) -> None:
    check_cover(start_min * MINUTE, (start_min + length_min) * MINUTE)


def fewest(start: int, end: int) -> int:
    """Brute force: fewest aligned buckets tiling [start, end), by dynamic programming."""
    n = (end - start) // MINUTE
    best = [0] + [n + 1] * n
    for i in range(1, n + 1):
        t = start + i * MINUTE  # best[i]: tiling [start, t); the last piece ends at t
        for res in RESOLUTIONS:
            j = i - res // MINUTE
            if j >= 0 and (t - res) % res == 0:
                best[i] = min(best[i], best[j] + 1)
    return best[n]


@given(MINUTES, st.integers(0, 3 * DAY // MINUTE))
def test_cover_is_minimal(start_min: int, length_min: int) -> None:
    start, end = start_min * MINUTE, (start_min + length_min) * MINUTE
    assert len(check_cover(start, end)) == fewest(start, end)


@pytest.mark.parametrize("window", ["1h", "24h", "7d", "30d"])
def test_worst_case_read_cost(window: str) -> None:
    """At an instant one minute past midnight, the worst case is nearly reached: the bound
    is tight up to the shape of the edges."""
    w = parse_windows(window)[0]
    worst = max(len(check_cover(t - w.ms, t)) for t in range(BASE, BASE + DAY, 7 * MINUTE))
    assert worst <= cover_bound(w.ms) <= 2 * 59 + 2 * 23 + 30
    t = BASE + DAY - MINUTE  # 23:59: the left edge needs 59 minutes and 23 hours
    assert len(cover(t - w.ms - MINUTE, t)) >= min(w.ms // MINUTE + 1, 59 + 23)


def test_cover_examples_and_errors() -> None:
    assert cover(BASE, BASE) == []
    assert cover(BASE, BASE + DAY) == [(DAY, BASE)]
    assert cover(BASE - MINUTE, BASE + HOUR + MINUTE) == [
        (MINUTE, BASE - MINUTE), (HOUR, BASE), (MINUTE, BASE + HOUR)]
    with pytest.raises(ValueError, match="whole minutes"):
        cover(BASE + 1, BASE + HOUR)
    with pytest.raises(ValueError, match="whole minutes"):
        cover(BASE, BASE + HOUR - 1)
    with pytest.raises(ValueError, match="after its end"):
        cover(BASE + HOUR, BASE)
