"""Segment trends: whether a segment's NPS in one window differs from the window before it
by more than chance, from the promoter / passive / detractor counts alone.

The test: each window's NPS is the mean of a variable that is +1 for a promoter, 0 for a
passive and −1 for a detractor, whose variance is known from the counts
(p + d − (p − d)², with p and d the promoter and detractor shares). The difference of the
two means, in points, has the standard error 100 · √(v₁/n₁ + v₀/n₀); the change is
significant at level L when the two-sided interval ``change ± z · se`` (z the normal quantile
of 1 − (1 − L)/2) leaves out 0, with at least the minimum number of answers on each side.
Two windows of independent answers is what the z-test assumes; answers of one customer in
both windows make them slightly dependent, which the docs say.

Pure: no I/O. Not compiled: it runs per check and per query, not per event.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

from cxstream.core.scoring import DETRACTORS, PASSIVES, PROMOTERS

__all__ = ["Change", "change", "z_for"]


def z_for(level: float) -> float:
    """The two-sided normal quantile of confidence `level` (0.95 → 1.96)."""
    if not 0.5 < level < 1:
        raise ValueError("the level must be between 0.5 and 1")
    return NormalDist().inv_cdf(1 - (1 - level) / 2)


@dataclass(frozen=True, slots=True)
class Change:
    """The NPS of a window against the window before it: both scores and counts, the change
    in points, its interval at the level tested, and whether it is significant (0 outside
    the interval, both counts at least the minimum); `direction` "up" or "down" when it is."""

    nps: float
    previous_nps: float
    responses: int
    previous_responses: int
    change: float
    low: float
    high: float
    significant: bool

    @property
    def direction(self) -> str | None:
        if not self.significant:
            return None
        return "up" if self.change > 0 else "down"


def _mean_var(counts: Sequence[int]) -> tuple[int, float, float]:
    p, m, d = counts[PROMOTERS], counts[PASSIVES], counts[DETRACTORS]
    n = p + m + d
    if n == 0:
        return 0, 0.0, 0.0
    mean = (p - d) / n
    # Clamped: rounding can make an exact 0 a tiny negative number.
    return n, mean, max(p / n + d / n - mean * mean, 0.0)


def change(current: Sequence[int], previous: Sequence[int], *, z: float,
           min_responses: int) -> Change | None:
    """The change of NPS from `previous` to `current` (counts lists,
    `cxstream.core.scoring`), tested at the quantile `z` (`z_for`); None when either window
    has no NPS answer. Significant needs `min_responses` answers in each window; with no
    variance on either side (every answer of one category in both) any change is."""
    n1, m1, v1 = _mean_var(current)
    n0, m0, v0 = _mean_var(previous)
    if n1 == 0 or n0 == 0:
        return None
    diff = 100.0 * (m1 - m0)
    se = 100.0 * math.sqrt(v1 / n1 + v0 / n0)
    low, high = diff - z * se, diff + z * se
    enough = n1 >= min_responses and n0 >= min_responses
    outside = (low > 0 or high < 0) if se > 0 else diff != 0
    return Change(nps=100.0 * m1, previous_nps=100.0 * m0, responses=n1,
                  previous_responses=n0, change=diff, low=low, high=high,
                  significant=enough and outside)
