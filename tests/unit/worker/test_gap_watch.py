"""The offset-gap check: a gap is reported only when it is certain."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cxstream.worker.gap_watch import missing_range


def test_the_observed_gap_is_found() -> None:
    # Seen after SIGKILL + restart: committed 232, offsets 232-241 dropped, 242-749 acked.
    assert missing_range(232, range(242, 750), []) == (232, 241)


def test_no_gap_when_acks_start_at_the_committed_offset() -> None:
    assert missing_range(232, range(232, 750), []) is None
    assert missing_range(232, [], []) is None
    assert missing_range(None, [5, 6], []) is None


def test_a_message_still_in_flight_is_not_a_gap() -> None:
    assert missing_range(10, [12, 13], [11]) is None
    assert missing_range(10, [12, 13], [14]) == (10, 11)


@given(st.integers(0, 1000), st.sets(st.integers(0, 1100), max_size=40),
       st.sets(st.integers(0, 1100), max_size=5))
def test_a_reported_range_is_exactly_the_unacked_offsets_below_the_lowest_ack(
        committed: int, acked: set[int], in_flight: set[int]) -> None:
    rng = missing_range(committed, acked, in_flight)
    if rng is None:
        return
    first, last = rng
    assert first == committed and last == min(acked) - 1
    assert not acked & set(range(first, last + 1))
    assert not in_flight & set(range(first, last + 1))


def test_ranges_faust_skips_count_as_acknowledged() -> None:
    # Faust commits through its own gap ranges (offsets absent from the log).
    assert missing_range(10, [20, 21], [], [(10, 20)]) is None
    assert missing_range(10, [20, 21], [], [(15, 20)]) == (10, 14)
    assert missing_range(10, [], [], [(12, 14)]) == (10, 11)
    assert missing_range(10, [], [], [(3, 9)]) is None
