"""NPS, CSAT and CES from additive counters.

A bucket holds eight integers (a plain list, so it serialises to JSON as-is); sums of
buckets are exact, and scores are computed only at query time, so no rounding ever
accumulates and any set of buckets can be merged in any order.

Units of `summary`: NPS score −100..100 and its margin of error in points; CSAT score
0..100 (% of responses that are 4 or 5); CES mean 1..5 (5 = most effort) and
high_effort_share as a fraction 0..1 (share of responses that are 4 or 5).
"""

from __future__ import annotations

import math
from typing import Any, Literal, Sequence, TypeAlias, cast

from cxstream.core.model import SCORE_RANGES

__all__ = ["CES_HIGH", "CES_N", "CES_SUM", "CSAT_N", "CSAT_SATISFIED", "Category", "Counts",
           "DETRACTORS", "PASSIVES", "PROMOTERS", "WIDTH", "Increment", "add", "category",
           "increment", "merge", "nps", "plus", "summary", "zero"]

Category = Literal["promoter", "passive", "detractor"]
#: The additive counters of one bucket, at the positions below.
Counts: TypeAlias = list[int]
#: What one response adds to a counts list: (position, amount) pairs.
Increment: TypeAlias = tuple[tuple[int, int], ...]

# Positions in a counts list. Append-only: persisted state depends on them.
PROMOTERS, PASSIVES, DETRACTORS, CSAT_N, CSAT_SATISFIED, CES_N, CES_SUM, CES_HIGH = range(8)
WIDTH = 8

_Z = 1.96  # two-sided 95 % normal quantile, as the product spec fixes it


def zero() -> Counts:
    """Empty counters: the identity of `merge`."""
    return [0] * WIDTH


def _check(counts: Sequence[int]) -> None:
    if len(counts) != WIDTH:
        raise ValueError(f"counts must have {WIDTH} entries, got {len(counts)}")


def _check_score(survey: str, score: object) -> int:
    """`score` itself once it is a valid score of `survey` (typed `object`: callers pass
    decoded JSON, and the compiled core would otherwise turn a wrong type into a TypeError
    before this check could name it)."""
    bounds = SCORE_RANGES.get(survey)
    if bounds is None:
        raise ValueError(f"unknown survey {survey!r} (expected nps, csat or ces)")
    # bool is an int subclass; a True score is a caller bug, not a 1.
    if type(score) is not int or not bounds[0] <= score <= bounds[1]:
        raise ValueError(f"{survey} score must be an integer {bounds[0]}..{bounds[1]}, "
                         f"got {score!r}")
    return cast(int, score)


def category(score: object) -> Category:
    """NPS category: promoters 9–10, passives 7–8, detractors 0–6."""
    score = _check_score("nps", score)
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def increment(survey: str, score: object) -> Increment:
    """What one response adds, validated once: a response goes into three buckets in each
    of its ~6 segments, and applying these pairs is much cheaper than re-validating the
    score for each of them."""
    score = _check_score(survey, score)
    if survey == "nps":
        return ((PROMOTERS if score >= 9 else PASSIVES if score >= 7 else DETRACTORS, 1),)
    if survey == "csat":
        return ((CSAT_N, 1), (CSAT_SATISFIED, int(score >= 4)))
    return ((CES_N, 1), (CES_SUM, score), (CES_HIGH, int(score >= 4)))  # ces


def add(counts: Sequence[int], survey: str, score: object) -> Counts:
    """A copy of `counts` with one response added (validated: a bad score would otherwise
    silently land in a category forever)."""
    return plus(counts, increment(survey, score))


def plus(counts: Sequence[int], inc: Increment) -> Counts:
    """A copy of `counts` with an `increment` added (its width checked)."""
    _check(counts)
    out = list(counts)
    for position, amount in inc:
        out[position] += amount
    return out


def merge(a: Sequence[int], b: Sequence[int]) -> Counts:
    """Element-wise sum: counters of disjoint sets of responses add up exactly."""
    _check(a)
    _check(b)
    return [x + y for x, y in zip(a, b)]


def nps(promoters: int, passives: int, detractors: int) -> tuple[float | None, float | None]:
    """(score −100..100, 95 % margin of error in points), (None, None) without responses.

    Margin: 1.96 × 100 × √((p + d − (p − d)²)/n), the normal approximation of the variance
    of a promoter (+1) / passive (0) / detractor (−1) variable.
    """
    n = promoters + passives + detractors
    if n == 0:
        return None, None
    p, d = promoters / n, detractors / n
    score = 100.0 * (promoters - detractors) / n
    # Clamp: rounding can make an exact 0 (all promoters, say) a tiny negative number.
    variance = max(p + d - (p - d) ** 2, 0.0)
    return score, _Z * 100.0 * math.sqrt(variance / n)


def summary(counts: Sequence[int], *, min_responses: int = 30) -> dict[str, Any]:
    """The API's score objects; scores are None for a survey without responses, and
    `low_sample` is True when that survey has fewer than `min_responses` responses.

    NPS score −100..100 (margin of error in points); CSAT score 0..100 (% satisfied);
    CES mean 1..5 and high_effort_share a fraction 0..1.
    """
    _check(counts)
    c = counts
    nps_n = c[PROMOTERS] + c[PASSIVES] + c[DETRACTORS]
    score, moe = nps(c[PROMOTERS], c[PASSIVES], c[DETRACTORS])
    return {
        "nps": {"responses": nps_n, "promoters": c[PROMOTERS], "passives": c[PASSIVES],
                "detractors": c[DETRACTORS], "score": score, "margin_of_error": moe,
                "low_sample": nps_n < min_responses},
        "csat": {"responses": c[CSAT_N], "satisfied": c[CSAT_SATISFIED],
                 "score": 100.0 * c[CSAT_SATISFIED] / c[CSAT_N] if c[CSAT_N] else None,
                 "low_sample": c[CSAT_N] < min_responses},
        "ces": {"responses": c[CES_N],
                "mean": c[CES_SUM] / c[CES_N] if c[CES_N] else None,
                "high_effort_share": c[CES_HIGH] / c[CES_N] if c[CES_N] else None,
                "low_sample": c[CES_N] < min_responses},
    }
