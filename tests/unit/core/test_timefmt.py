"""RFC 3339 ↔ epoch milliseconds: round trips, offsets, and everything strict RFC 3339 rejects."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxstream.core import timefmt
from cxstream.core.timefmt import MAX_MS, MIN_MS, format_rfc3339, instant_of, parse_rfc3339

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


# -- format ------------------------------------------------------------------------------------
@pytest.mark.parametrize("ms,text", [
    (0, "1970-01-01T00:00:00Z"),
    (1, "1970-01-01T00:00:00.001Z"),
    (-1, "1969-12-31T23:59:59.999Z"),
    (1_709_164_800_000, "2024-02-29T00:00:00Z"),
    (1_793_455_500_250, "2026-10-31T14:05:00.250Z"),
    (MIN_MS, "0001-01-01T00:00:00Z"),
    (MAX_MS, "9999-12-31T23:59:59.999Z"),
    (-58_979_923_200_000, "0101-01-01T00:00:00Z"),  # years below 1000 are zero-padded
])
def test_format(ms: int, text: str) -> None:
    assert format_rfc3339(ms) == text
    assert parse_rfc3339(text) == ms


@pytest.mark.parametrize("ms", [MIN_MS - 1, MAX_MS + 1, 10**20, -(10**20)])
def test_format_outside_years_1_to_9999_raises(ms: int) -> None:
    with pytest.raises(ValueError):
        format_rfc3339(ms)


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=MIN_MS, max_value=MAX_MS))
def test_round_trip(ms: int) -> None:
    text = format_rfc3339(ms)
    assert parse_rfc3339(text) == ms
    assert text.endswith("Z") and len(text) in (20, 24)
    assert (len(text) == 24) == (ms % 1000 != 0)


# -- parse: valid ------------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    ("1970-01-01T00:00:00Z", 0),
    ("1970-01-01t00:00:00z", 0),
    ("1970-01-01T00:00:00+00:00", 0),
    ("1970-01-01T00:00:00-00:00", 0),
    ("1970-01-01T01:00:00+01:00", 0),
    ("1969-12-31T21:00:00-03:00", 0),
    ("1970-01-01T05:30:00+05:30", 0),
    ("1970-01-01T00:00:00+23:59", -86_340_000),
    ("1970-01-01T00:00:00-23:59", 86_340_000),
    ("2026-10-31T16:30:00+05:30", 1_793_444_400_000),
    ("2026-10-31T08:00:00-03:00", 1_793_444_400_000),
    ("2026-10-31T11:00:00Z", 1_793_444_400_000),
    ("1970-01-01T00:00:00.1Z", 100),
    ("1970-01-01T00:00:00.12Z", 120),
    ("1970-01-01T00:00:00.0019Z", 1),  # floored, not rounded
    ("1970-01-01T00:00:00.999999999Z", 999),
    ("1970-01-01T00:00:00." + "9" * 100 + "Z", 999),  # any number of fraction digits
    ("1969-12-31T23:59:59.9999Z", -1),
    ("2024-02-29T00:00:00Z", 1_709_164_800_000),
    ("2000-02-29T00:00:00Z", 951_782_400_000),
    ("2026-12-31T23:59:59Z", 1_798_761_599_000),
])
def test_parse(text: str, expected: int) -> None:
    assert parse_rfc3339(text) == expected


# -- parse: invalid ----------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    # calendar
    "2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2026-02-30T00:00:00Z", "2026-04-31T00:00:00Z",
    "2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z", "2026-10-00T00:00:00Z", "2026-10-32T00:00:00Z",
    "0000-01-01T00:00:00Z",
    # clock
    "2026-10-31T24:00:00Z", "2026-10-31T00:60:00Z", "2026-10-31T00:00:60Z", "2026-06-30T23:59:60Z",
    # offset
    "2026-10-31T00:00:00", "2026-10-31T00:00:00+24:00", "2026-10-31T00:00:00+05:60",
    "2026-10-31T00:00:00+0530", "2026-10-31T00:00:00+05", "2026-10-31T00:00:00UTC",
    "2026-10-31T00:00:00 Z", "2026-10-31T00:00:00ZZ",
    # shape
    "", "2026-10-31", "2026-10-31T00:00Z", "2026-10-31T00:00:00.Z", "2026-10-31 00:00:00Z",
    "2026-10-31_00:00:00Z", "26-10-31T00:00:00Z", "+2026-10-31T00:00:00Z", "12026-10-31T00:00:00Z",
    "2026-1-31T00:00:00Z", "2026-10-31T0:00:00Z", "2026-10-31T00:00:00,5Z", "2026/10/31T00:00:00Z",
    # whitespace and non-ASCII
    " 2026-10-31T00:00:00Z", "2026-10-31T00:00:00Z ", "2026-10-31T00:00:00Z\n", "2026-10-31T00:00:00Z\r\n",
    "\n2026-10-31T00:00:00Z", "２０２６-10-31T00:00:00Z", "٢٠٢٦-10-31T00:00:00Z",
    "2026-10-31T00:00:00.５Z", "2026-10-31T00:00:00+０５:30",
])
def test_invalid(text: str) -> None:
    assert parse_rfc3339(text) is None


@pytest.mark.parametrize("value", [None, 0, 1.5, b"2026-10-31T00:00:00Z", ["2026-10-31T00:00:00Z"], {}])
def test_non_strings_give_none(value: Any) -> None:
    assert parse_rfc3339(value) is None


# -- parse: against a reference built on datetime -----------------------------------------------
def reference(year: int, month: int, day: int, hour: int, minute: int, second: int,
              frac: str, offset: int | None) -> int | None:
    """What `instant_of` should give for the text, by way of datetime (None: not a valid
    date-time); `parse_rfc3339` gives the same inside MIN_MS..MAX_MS and None outside."""
    if offset is None or not (0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 59):
        return None
    if abs(offset) >= 24 * 60:
        return None
    try:
        at = datetime(year, month, day, hour, minute, second,
                      tzinfo=timezone(timedelta(minutes=offset)))
    except ValueError:
        return None
    return (at - EPOCH) // timedelta(milliseconds=1) + (int((frac + "00")[:3]) if frac else 0)


@settings(max_examples=1000, deadline=None)
@given(
    year=st.integers(0, 9999), month=st.integers(0, 13), day=st.integers(0, 32),
    hour=st.integers(0, 25), minute=st.integers(0, 61), second=st.integers(0, 61),
    frac=st.sampled_from(["", "0", "5", "25", "250", "2509", "999999999"]),
    offset=st.none() | st.integers(-25 * 60, 25 * 60), off_minute_over=st.booleans(),
    t=st.sampled_from("Tt"), z=st.sampled_from("Zz"),
)
def test_parse_matches_reference(year: int, month: int, day: int, hour: int, minute: int, second: int,
                                 frac: str, offset: int | None, off_minute_over: bool, t: str, z: str) -> None:
    text = f"{year:04d}-{month:02d}-{day:02d}{t}{hour:02d}:{minute:02d}:{second:02d}"
    text += f".{frac}" if frac else ""
    if offset is None:
        expected = reference(year, month, day, hour, minute, second, frac, None)
    elif offset == 0 and not off_minute_over:
        text += z
        expected = reference(year, month, day, hour, minute, second, frac, 0)
    else:
        sign = "+" if offset >= 0 else "-"
        oh, om = divmod(abs(offset), 60)
        if off_minute_over:  # a minute field of 60..99 is never valid
            om += 60
        text += f"{sign}{oh:02d}:{om:02d}"
        expected = None if off_minute_over else reference(year, month, day, hour, minute, second, frac, offset)
    assert instant_of(text) == expected, text
    bounded = expected if expected is not None and MIN_MS <= expected <= MAX_MS else None
    assert parse_rfc3339(text) == bounded, text


@settings(max_examples=300, deadline=None)
@given(st.integers(MIN_MS + 86_400_000, MAX_MS - 86_400_000), st.integers(-(24 * 60 - 1), 24 * 60 - 1))
def test_the_same_instant_with_any_offset(ms: int, offset_minutes: int) -> None:
    local = datetime.fromtimestamp(0, timezone.utc) + timedelta(milliseconds=ms, minutes=offset_minutes)
    sign = "+" if offset_minutes >= 0 else "-"
    oh, om = divmod(abs(offset_minutes), 60)
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}{sign}{oh:02d}:{om:02d}"
    text = f"{local.year:04d}" + text[text.index("-", 1):]  # strftime does not pad years < 1000
    assert parse_rfc3339(text) == ms


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=40))
def test_never_raises(text: str) -> None:
    result = parse_rfc3339(text)
    assert result is None or MIN_MS <= result <= MAX_MS
    unbounded = instant_of(text)
    assert unbounded is None or MIN_MS - 86_400_000 < unbounded < MAX_MS + 86_400_000


# -- the representable range: what parses can be formatted back ----------------------------------
@pytest.mark.parametrize("text,instant", [
    ("0001-01-01T00:30:00+01:00", MIN_MS - 1_800_000),
    ("0001-01-01T00:00:00+23:59", MIN_MS - 86_340_000),
    ("0001-01-01T00:00:00.000+00:01", MIN_MS - 60_000),
    ("9999-12-31T23:30:00-01:00", MAX_MS + 1 + 1_800_000),
    ("9999-12-31T23:59:59.999-23:59", MAX_MS + 86_340_000),
    ("9999-12-31T23:59:00-00:01", MAX_MS + 1),
])
def test_instants_outside_years_1_to_9999_are_not_parsed(text: str, instant: int) -> None:
    """Valid RFC 3339 texts whose offset takes the instant out of the range: format_rfc3339
    would raise on them (in an alert, in the HTTP API), so parse_rfc3339 refuses them."""
    assert parse_rfc3339(text) is None
    assert instant_of(text) == instant


@pytest.mark.parametrize("text,instant", [
    ("0001-01-01T00:00:00Z", MIN_MS), ("0001-01-01T01:00:00+01:00", MIN_MS),
    ("0001-01-01T00:00:00-00:01", MIN_MS + 60_000), ("9999-12-31T23:59:59.999Z", MAX_MS),
    ("9999-12-31T22:59:59.999-01:00", MAX_MS),
    ("9999-12-31T23:59:59.999+23:59", MAX_MS - 86_340_000),
])
def test_the_edges_of_the_range_parse(text: str, instant: int) -> None:
    assert parse_rfc3339(text) == instant_of(text) == instant
    assert parse_rfc3339(format_rfc3339(instant)) == instant


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from([MIN_MS, MAX_MS]), st.integers(-2 * 86_400_000, 2 * 86_400_000),
       st.integers(-(24 * 60 - 1), 24 * 60 - 1), st.sampled_from(["", ".5", ".999", ".0001"]))
def test_whatever_parses_formats_back(edge: int, shift: int, offset_minutes: int,
                                      frac: str) -> None:
    """Near both ends of the range, in any offset: every instant parse_rfc3339 gives can be
    formatted and parsed back to itself; instant_of gives the same one inside the range."""
    local = edge + shift + offset_minutes * 60_000
    if not MIN_MS <= local <= MAX_MS:
        return  # no such local date-time text
    sign = "+" if offset_minutes >= 0 else "-"
    oh, om = divmod(abs(offset_minutes), 60)
    text = format_rfc3339(local - local % 1000)[:19] + frac + f"{sign}{oh:02d}:{om:02d}"
    got = parse_rfc3339(text)
    unbounded = instant_of(text)
    assert unbounded is not None
    assert got == (unbounded if MIN_MS <= unbounded <= MAX_MS else None)
    if got is not None:
        assert parse_rfc3339(format_rfc3339(got)) == got


# -- the minute cache: parses that skip the regex give the regex's answers ----------------------
EDITS = st.lists(st.tuples(st.integers(0, 23), st.sampled_from("0123456789:.-+TtZz ５a\n")), max_size=2)


@settings(max_examples=1000, deadline=None)
@given(st.integers(MIN_MS, MAX_MS), st.booleans(), EDITS, st.integers(0, 25))
def test_cached_minutes_change_no_result(ms: int, whole_seconds: bool, edits: list[tuple[int, str]],
                                         cut: int) -> None:
    instant = ms - ms % 1000 if whole_seconds else ms
    usual = format_rfc3339(instant)  # 20 or 24 characters
    chars = list(usual)
    for at, char in edits:
        chars[at % len(chars)] = char
    text = "".join(chars)[:cut] if cut < 20 else "".join(chars)
    timefmt._MINUTES.clear()
    cold = parse_rfc3339(text)
    assert parse_rfc3339(usual) == instant  # caches its minute
    assert parse_rfc3339(text) == cold  # with the unedited text's minute known
    assert parse_rfc3339(text) == cold  # and with its own, if it parsed


def test_the_minute_cache_is_bounded() -> None:
    start = 1_793_448_000_000
    for minute in range(timefmt._MINUTES_MAX + 10):
        assert parse_rfc3339(format_rfc3339(start + minute * 60_000)) == start + minute * 60_000
    assert 0 < len(timefmt._MINUTES) <= timefmt._MINUTES_MAX
