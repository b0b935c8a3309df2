"""NPS, CSAT and CES from additive counters.

A bucket holds eight integers; sums of buckets are exact, and scores are computed only at
query time, so no rounding ever accumulates.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Sequence

Category = Literal["promoter", "passive", "detractor"]

# Positions in a counts list.
PROMOTERS, PASSIVES, DETRACTORS, CSAT_N, CSAT_SATISFIED, CES_N, CES_SUM, CES_HIGH = range(8)
WIDTH = 8


def zero() -> list[int]:
    return [0] * WIDTH


def category(score: int) -> Category:
    """NPS category: promoters 9–10, passives 7–8, detractors 0–6."""
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def add(counts: Sequence[int], survey: str, score: int) -> list[int]:
    """A copy of `counts` with one response added."""
    out = list(counts)
    if survey == "nps":
        out[PROMOTERS if score >= 9 else PASSIVES if score >= 7 else DETRACTORS] += 1
    elif survey == "csat":
        out[CSAT_N] += 1
        out[CSAT_SATISFIED] += score >= 4
    elif survey == "ces":
        out[CES_N] += 1
        out[CES_SUM] += score
        out[CES_HIGH] += score >= 4
    else:
        raise ValueError(f"unknown survey {survey!r}")
    return out


def merge(a: Sequence[int], b: Sequence[int]) -> list[int]:
    return [x + y for x, y in zip(a, b)]


def nps(promoters: int, passives: int, detractors: int) -> tuple[float | None, float | None]:
    """(score −100..100, 95 % margin of error in points), None when there are no responses."""
    n = promoters + passives + detractors
    if n == 0:
        return None, None
    p, d = promoters / n, detractors / n
    score = 100.0 * (promoters - detractors) / n
    variance = max(p + d - (p - d) ** 2, 0.0)
    return score, 1.96 * 100.0 * math.sqrt(variance / n)


def summary(counts: Sequence[int], *, min_responses: int = 30) -> dict[str, Any]:
    """The API's score objects. CSAT score is 0..100 (% satisfied); CES mean is 1..5 and
    high_effort_share is the fraction 0..1 of responses of 4 or 5."""
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
