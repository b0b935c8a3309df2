"""`cxstream simulate`'s timing of the past it sends before live traffic (the demo's
history): evenly at the rate, from its start up to now, as the demo's test recomputes it."""

from __future__ import annotations

from cxstream.tools.simulate import past_times

T0 = 1_700_000_040_000  # a whole minute


def test_past_times_fill_from_the_start_until_now_at_the_rate() -> None:
    times = past_times(T0, T0 + 180_500, 50.0)
    assert times[:3] == [T0, T0 + 20, T0 + 40]
    assert len(times) == 180_500 // 20 and times[-1] < T0 + 180_500
    # the first minute holds exactly a minute's worth, whatever now is
    assert sum(t < T0 + 60_000 for t in times) == 3_000
    assert past_times(T0, T0, 50.0) == []
    uneven = past_times(T0, T0 + 1_000, 3.0)
    assert uneven == [T0, T0 + 333, T0 + 666]
