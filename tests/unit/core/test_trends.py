"""Segment trends (`cxstream.core.trends`, `cxstream.core.targets.decide_trends`): the z-test
against a direct computation on the counts, and the `segment_shift` alerts of both stages
against a brute-force oracle (`targets_oracle.stage1`: which answers each partition reported
for each window end), in any interleaving, with late, duplicate and out-of-order answers."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from statistics import NormalDist
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxstream.core.targets import MAX_JUMP, TargetConfig
from cxstream.core.trends import change, z_for
from cxstream.core.windows import MINUTE, Window

from . import targets_oracle as oracle
from .test_targets import (
    HORIZON,
    SPECS,
    History,
    build_history,
    histories,
    rfc3339,
    simulate,
    target_cfg,
)


def direct(now: tuple[int, int, int], then: tuple[int, int, int], level: float, minimum: int
           ) -> tuple[float, float, float, bool]:
    """(change, low, high, significant) from the definition, on (promoters, passives,
    detractors) of each window."""
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)

    def mean_var(c: tuple[int, int, int]) -> tuple[int, float, float]:
        n = sum(c)
        p, d = c[0] / n, c[2] / n
        return n, p - d, p + d - (p - d) ** 2

    n1, m1, v1 = mean_var(now)
    n0, m0, v0 = mean_var(then)
    diff = 100 * (m1 - m0)
    se = 100 * math.sqrt(max(v1, 0) / n1 + max(v0, 0) / n0)
    low, high = diff - z * se, diff + z * se
    outside = (low > 0 or high < 0) if se > 0 else diff != 0
    return diff, low, high, n1 >= minimum and n0 >= minimum and outside


counts3 = st.tuples(st.integers(0, 500), st.integers(0, 500), st.integers(0, 500))


@settings(max_examples=500, deadline=None)
@given(counts3, counts3, st.sampled_from([0.9, 0.95, 0.99, 0.999]), st.integers(1, 300))
def test_the_change_and_its_interval_are_the_direct_computation(
        now: tuple[int, int, int], then: tuple[int, int, int], level: float,
        minimum: int) -> None:
    got = change([*now, 0, 0, 0, 0, 0], [*then, 0, 0, 0, 0, 0], z=z_for(level),
                 min_responses=minimum)
    if not sum(now) or not sum(then):
        assert got is None
        return
    assert got is not None
    diff, low, high, significant = direct(now, then, level, minimum)
    assert got.change == pytest.approx(diff, abs=1e-9)
    assert got.low == pytest.approx(low, abs=1e-9) and got.high == pytest.approx(high, abs=1e-9)
    assert got.significant == significant
    assert (got.responses, got.previous_responses) == (sum(now), sum(then))
    assert got.direction == (None if not significant else "up" if diff > 0 else "down")


def test_the_usual_levels_have_their_usual_quantiles() -> None:
    assert z_for(0.95) == pytest.approx(1.959964, abs=1e-6)
    assert z_for(0.99) == pytest.approx(2.575829, abs=1e-6)
    with pytest.raises(ValueError):
        z_for(1.0)


def test_a_change_with_no_variance_is_significant_with_enough_answers() -> None:
    every_promoter = [120, 0, 0, 0, 0, 0, 0, 0]
    every_detractor = [0, 0, 120, 0, 0, 0, 0, 0]
    found = change(every_detractor, every_promoter, z=z_for(0.999), min_responses=100)
    assert found is not None and found.change == -200 and found.direction == "down"
    assert change(every_promoter, every_promoter, z=3, min_responses=1).significant is False
    few = change(every_detractor, every_promoter, z=3, min_responses=121)
    assert few is not None and not few.significant


# -- both stages against the oracle ------------------------------------------------------------
TRENDS = (Window("30m", 30 * MINUTE),)


def trend_cfg(history: History, settle: int, minimum: int, level: float,
              targets: bool) -> TargetConfig:
    base = target_cfg(history.partitions, settle)
    return replace(base, trends=TRENDS, trend_level=level, trend_min_responses=minimum,
                   **({} if targets else {"programs": (), "windows": ()}))


def expected_shifts(history: History, tcfg: TargetConfig
                    ) -> dict[tuple[str, str, str, int], tuple[int, int]]:
    """(direction, window, segment, window end) → (responses, previous responses): the
    windows decided, in order; per window and segment the NPS answers (every NPS program)
    counted up to each partition's report, tested as `direct` does; one alert per direction
    until it reverses."""
    reports = oracle.stage1(history.answers, horizon=HORIZON, every=tcfg.every_ms,
                            settle=tcfg.settle_ms, max_jump=MAX_JUMP)
    last: dict[tuple[str, str], str] = {}
    out: dict[tuple[str, str, str, int], tuple[int, int]] = {}
    for b in oracle.decided(reports, history.partitions):
        answers = [a for p in range(history.partitions) for a in reports[(p, b)]
                   if SPECS[a.program].metric == "nps"]
        for window in tcfg.trends:
            def tally(start: int, end: int, segment: str) -> tuple[int, int, int]:
                scores = [a.score for a in answers if start <= a.at < end
                          and segment in a.segments]
                return (sum(s >= 9 for s in scores), sum(7 <= s <= 8 for s in scores),
                        sum(s <= 6 for s in scores))

            for segment in sorted({s for a in answers for s in a.segments}):
                now = tally(b - window.ms, b, segment)
                then = tally(b - 2 * window.ms, b - window.ms, segment)
                if not sum(now) or not sum(then):
                    continue
                diff, _, _, significant = direct(now, then, tcfg.trend_level,
                                                 tcfg.trend_min_responses)
                direction = "up" if diff > 0 else "down"
                if significant and last.get((window.name, segment)) != direction:
                    last[(window.name, segment)] = direction
                    out[(direction, window.name, segment, b)] = (sum(now), sum(then))
    return out


@settings(max_examples=150, deadline=None)
@given(histories(max_answers=80), st.sampled_from([0, 3 * MINUTE, 7 * MINUTE]),
       st.integers(1, 4), st.sampled_from([0.6, 0.8, 0.95]), st.booleans(),
       st.integers(0, 2**32))
def test_shift_alerts_equal_the_oracle_in_any_interleaving(
        history: History, settle: int, minimum: int, level: float, targets: bool,
        seed: int) -> None:
    """Low levels and minimums, so that small histories shift: every `segment_shift` is the
    oracle's, once, with its counts; target alerts beside them stay the targets' own."""
    tcfg = trend_cfg(history, settle, minimum, level, targets)
    run = simulate(history, tcfg, random.Random(seed))
    shifts = [a for a in run.alerts if a["kind"] == "segment_shift"]
    ids = [a["alert_id"] for a in shifts]
    assert len(ids) == len(set(ids))
    got = {(a["direction"], a["window"], a["segment_key"], a["window_end"]): a for a in shifts}
    want = expected_shifts(history, tcfg)
    assert set(got) == {(d, w, s, rfc3339(b)) for d, w, s, b in want}
    for (d, w, s, b), (n1, n0) in want.items():
        a: Any = got[(d, w, s, rfc3339(b))]
        assert (a["responses"], a["previous_responses"]) == (n1, n0)
        assert a["previous_start"] == rfc3339(b - 60 * MINUTE)
    if not targets:
        assert all(a["kind"] == "segment_shift" for a in run.alerts)


def test_a_replay_gives_the_same_shift_alerts() -> None:
    """Two runs of one history in other interleavings: the same shift alerts, by id."""
    found = 0
    for seed in range(40):
        history = build_history(1 + seed % 4, seed, 70)
        tcfg = trend_cfg(history, 3 * MINUTE, 1, 0.6, False)
        first = simulate(history, tcfg, random.Random(seed))
        second = simulate(history, tcfg, random.Random(seed + 1000))
        ids = {a["alert_id"] for a in first.alerts}
        assert ids == {a["alert_id"] for a in second.alerts}
        found += len(ids)
    assert found > 0, "the histories must shift now and then"
