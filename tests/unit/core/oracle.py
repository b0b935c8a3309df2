"""A deliberately naive oracle: recompute everything from the full event list.

Shared by the unit property tests and the integration tests. It knows the product rules
(per-partition stream time, too late, duplicates, segments, windows, turns) but none of the
implementation (no buckets, no cover, no step): every answer is a scan of all events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

DAY = 86_400_000


@dataclass(frozen=True)
class Ev:
    partition: int
    offset: int
    event_id: str
    customer_id: str
    survey: str
    score: int
    at: int
    segment: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    touchpoint: str | None = None
    channel: str | None = None


def accepted(events: Iterable[Ev], horizon: int) -> list[Ev]:
    """Events that count: not too late against their partition's stream time at arrival,
    and the first accepted occurrence of each (customer, event_id)."""
    out: list[Ev] = []
    stream_time: dict[int, int] = {}
    seen: set[tuple[str, str]] = set()
    for e in sorted(events, key=lambda e: (e.partition, e.offset)):
        st = stream_time.get(e.partition)
        if st is not None and e.at < st - horizon:
            continue  # too late: dead-lettered
        stream_time[e.partition] = e.at if st is None else max(st, e.at)
        if (e.customer_id, e.event_id) in seen:
            continue
        seen.add((e.customer_id, e.event_id))
        out.append(e)
    return out


def stream_times(events: Iterable[Ev], horizon: int) -> dict[int, int]:
    st: dict[int, int] = {}
    for e in sorted(events, key=lambda e: (e.partition, e.offset)):
        cur = st.get(e.partition)
        if cur is None or e.at >= cur - horizon:
            st[e.partition] = e.at if cur is None else max(cur, e.at)
    return st


def segments_of(e: Ev) -> set[str]:
    dims = dict(e.segment)
    if e.touchpoint is not None:
        dims["touchpoint"] = e.touchpoint
    if e.channel is not None:
        dims["channel"] = e.channel
    return {"all", *(f"{k}:{v}" for k, v in dims.items())}


def scores(events: list[Ev], segment: str, start: int, end: int) -> dict[str, Any]:
    """Counts and scores of `segment` over [start, end), by scanning every accepted event."""
    inside = [e for e in events if start <= e.at < end and segment in segments_of(e)]
    nps = [e.score for e in inside if e.survey == "nps"]
    csat = [e.score for e in inside if e.survey == "csat"]
    ces = [e.score for e in inside if e.survey == "ces"]
    p = sum(s >= 9 for s in nps)
    d = sum(s <= 6 for s in nps)
    n = len(nps)
    out: dict[str, Any] = {
        "nps": {"responses": n, "promoters": p, "passives": n - p - d, "detractors": d,
                "score": None, "margin_of_error": None},
        "csat": {"responses": len(csat), "satisfied": sum(s >= 4 for s in csat), "score": None},
        "ces": {"responses": len(ces), "mean": None, "high_effort_share": None},
    }
    if n:
        ps, ds = p / n, d / n
        out["nps"]["score"] = 100 * (ps - ds)
        out["nps"]["margin_of_error"] = 1.96 * 100 * math.sqrt((ps + ds - (ps - ds) ** 2) / n)
    if csat:
        out["csat"]["score"] = 100 * out["csat"]["satisfied"] / len(csat)
    if ces:
        out["ces"]["mean"] = sum(ces) / len(ces)
        out["ces"]["high_effort_share"] = sum(s >= 4 for s in ces) / len(ces)
    return out


def all_segments(events: list[Ev]) -> set[str]:
    return set().union(*(segments_of(e) for e in events)) if events else set()


def assert_matches(got: dict[str, Any], want: dict[str, Any], tol: float = 1e-9) -> None:
    """Counts equal exactly; scores equal to `tol`; None where the oracle has None."""
    for survey, fields in want.items():
        for name, value in fields.items():
            actual = got[survey][name]
            if value is None or isinstance(value, int):
                assert actual == value, (survey, name, actual, value)
            else:
                assert actual is not None and abs(actual - value) <= tol, (survey, name, actual, value)


def too_late(events: Iterable[Ev], horizon: int) -> set[tuple[int, int]]:
    """(partition, offset) of the events dead-lettered as too late."""
    out = set()
    stream_time: dict[int, int] = {}
    for e in sorted(events, key=lambda e: (e.partition, e.offset)):
        st = stream_time.get(e.partition)
        if st is not None and e.at < st - horizon:
            out.add((e.partition, e.offset))
            continue
        stream_time[e.partition] = e.at if st is None else max(st, e.at)
    return out
