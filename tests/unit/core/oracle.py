"""A deliberately naive oracle: recompute everything from the full event list.

Shared by the unit property tests and the integration tests. It knows the product rules
(per-partition stream time, too late, duplicates, segments and the value cap, windows) but
none of the implementation (no buckets, no cover, no step, no cxstream import at all): every
answer is a scan of all events, written straight from the spec.

Assumption (as in production, where the message key is the customer id): one customer's
events are all in one partition, so "first accepted occurrence" is well defined.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

DAY = 86_400_000
OTHER = "other"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

#: (partition, offset) of an event: its identity in the input log.
Pos = tuple[int, int]


@dataclass(frozen=True)
class Ev:
    partition: int
    offset: int
    event_id: str
    customer_id: str
    survey: str
    score: int
    at: int  # occurred_at, epoch ms
    segment: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    touchpoint: str | None = None
    channel: str | None = None
    #: The survey program answered; None: the metric's built-in one.
    program: str | None = field(default=None, hash=False, compare=False)

    @classmethod
    def of(cls, source: Any, partition: int, offset: int) -> Ev:
        """From a SurveyResponse (duck-typed) or a survey document dict (occurred_at as epoch
        ms or an RFC 3339 string)."""
        if isinstance(source, Mapping):
            get = source.get
        else:
            def get(name: str, default: Any = None) -> Any:
                return getattr(source, name, default)
        at = get("occurred_at")
        if isinstance(at, str):
            # Integer arithmetic: float timestamps can round .123 s to 122.99999 ms.
            dt = datetime.fromisoformat(at.replace("Z", "+00:00"))
            at = (dt - _EPOCH) // timedelta(milliseconds=1)
        return cls(partition, offset, get("event_id"), get("customer_id"), get("survey"),
                   int(get("score")), int(at), dict(get("segment") or {}), get("touchpoint"),
                   get("channel"), get("program"))


def _in_log_order(events: Iterable[Ev]) -> list[Ev]:
    return sorted(events, key=lambda e: (e.partition, e.offset))


def accepted(events: Iterable[Ev], horizon: int) -> list[Ev]:
    """Events that count: not too late against their partition's stream time at arrival,
    and the first accepted occurrence of each (customer, event_id)."""
    out: list[Ev] = []
    stream_time: dict[int, int] = {}
    seen: set[tuple[str, str]] = set()
    for e in _in_log_order(events):
        st = stream_time.get(e.partition)
        if st is not None and e.at < st - horizon:
            continue  # too late: dead-lettered
        stream_time[e.partition] = e.at if st is None else max(st, e.at)
        if (e.customer_id, e.event_id) in seen:
            continue
        seen.add((e.customer_id, e.event_id))
        out.append(e)
    return out


#: A survey program as the turn rules need it: (metric, low, high, range, turns), `range`
#: being csat's satisfied or ces's high-effort [low, high] (None for nps), `turns` whether
#: an nps program's answers drive the customer's NPS state.
Program = tuple[str, int, int, "tuple[int, int] | None", bool]
BUILTIN_PROGRAMS: dict[str, Program] = {"nps": ("nps", 0, 10, None, True),
                                        "csat": ("csat", 1, 5, (4, 5), False),
                                        "ces": ("ces", 1, 5, (4, 5), False)}


def nps_category(score: int) -> str:
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def at_risk(program: Program, score: int) -> bool:
    """Straight from docs/concepts/alerts.md: ces, the high-effort range; csat, the two
    points nearest the end of the scale away from the satisfied range, unless satisfied."""
    metric, low, high, rng, _ = program
    if metric == "ces":
        assert rng is not None
        return rng[0] <= score <= rng[1]
    if metric != "csat":
        return False
    assert rng is not None
    worst = low if rng[1] == high else high
    nearest = sorted(range(low, high + 1), key=lambda s: abs(s - worst))[:2]
    return score in nearest and not rng[0] <= score <= rng[1]


def customer_turns(events: Iterable[Ev], horizon: int,
                   programs: Mapping[str, Program] = BUILTIN_PROGRAMS, *,
                   risk: bool = True) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(customer, event_id) → (kind, previous category) of every customer alert, recomputed
    from scratch after each accepted response in log order: the latest answer of each metric
    by (occurred_at, event_id) among all accepted ones so far (nps: of turn-driving programs
    only); a turn only when a response becomes that latest one. `risk`: CXSTREAM_AT_RISK."""
    out: dict[tuple[str, str], tuple[str, str | None]] = {}
    answers: dict[tuple[str, str], list[Ev]] = {}

    def latest(cid: str, metric: str) -> Ev | None:
        rs = answers.get((cid, metric), [])
        return max(rs, key=lambda r: (r.at, r.event_id)) if rs else None

    def program(e: Ev) -> Program:
        return programs[e.program or e.survey]

    for e in accepted(events, horizon):  # log order; one customer is one partition
        p = program(e)
        if p[0] == "nps" and not p[4]:
            continue
        before = latest(e.customer_id, p[0])
        current = latest(e.customer_id, "nps")
        answers.setdefault((e.customer_id, p[0]), []).append(e)
        now = latest(e.customer_id, p[0])
        assert now is not None
        if now is not e:
            continue  # history
        if p[0] == "nps":
            b = nps_category(before.score) if before is not None else None
            c = nps_category(e.score)
            kind = ("detractor" if c == "detractor" and b != "detractor" else
                    "recovered" if b == "detractor" and c != "detractor" else
                    "promoter" if c == "promoter" and b in ("passive", None) else
                    "passive" if c == "passive" and b == "promoter" else None)
            if kind is not None:
                out[(e.customer_id, e.event_id)] = (kind, b)
            continue
        cat = nps_category(current.score) if current is not None else None
        if (risk and cat != "detractor" and at_risk(p, e.score)
                and not (before is not None and at_risk(program(before), before.score))):
            out[(e.customer_id, e.event_id)] = ("at_risk", cat)
    return out


def stream_times(events: Iterable[Ev], horizon: int) -> dict[int, int]:
    """Final stream time per partition: the highest occurred_at of events not too late."""
    st: dict[int, int] = {}
    for e in _in_log_order(events):
        cur = st.get(e.partition)
        if cur is None or e.at >= cur - horizon:
            st[e.partition] = e.at if cur is None else max(cur, e.at)
    return st


def retention_start(events: Iterable[Ev], horizon: int) -> int | None:
    """Earliest window start answerable on every partition (None: no data at all)."""
    st = stream_times(events, horizon)
    return max(st.values()) - horizon if st else None


def _dims(e: Ev, dimensions: frozenset[str] | None) -> dict[str, str]:
    dims = dict(e.segment)
    if e.touchpoint is not None:
        dims["touchpoint"] = e.touchpoint
    if e.channel is not None:
        dims["channel"] = e.channel
    return {k: v for k, v in dims.items() if dimensions is None or k in dimensions}


def segments_of(e: Ev, dimensions: frozenset[str] | None = None) -> set[str]:
    """Segments of an event without any cap."""
    return {"all", *(f"{k}:{v}" for k, v in _dims(e, dimensions).items())}


def capped_segments(events: Iterable[Ev], horizon: int, *, cap: int,
                    dimensions: frozenset[str] | None = None, max_dims: int | None = None,
                    max_response_dims: int | None = None) -> dict[Pos, set[str]]:
    """Segments of each accepted event under the caps: per partition, a dimension has `cap`
    value slots (in offset order, among accepted events); a value counts as itself while it
    holds one, else as `<dimension>:other`; the value `other` never takes a slot. A slot is
    held while the UTC day its value last counted still overlaps the horizon behind the
    partition's stream time (as of the event), and a value without one takes one when fewer
    than `cap` are held. With `max_dims` (and no `dimensions` list), only the first
    `max_dims` distinct dimensions of a partition count at all (within one event, in name
    order); an event with more than `max_response_dims` dimensions counts in `all` only."""
    slots: dict[tuple[int, str], dict[str, int]] = {}
    dim_slots: dict[int, list[str]] = {}
    out: dict[Pos, set[str]] = {}
    wanted = {(e.partition, e.offset) for e in accepted(events, horizon)}
    stream_time: dict[int, int] = {}
    for e in _in_log_order(events):
        st = stream_time.get(e.partition)
        if st is None or e.at >= st - horizon:
            stream_time[e.partition] = e.at if st is None else max(st, e.at)
        if (e.partition, e.offset) not in wanted:
            continue
        out[(e.partition, e.offset)] = {"all"} | _take_slots(
            e.partition, _dims(e, dimensions), slots, dim_slots, cap=cap,
            max_dims=max_dims if dimensions is None else None,
            max_response_dims=max_response_dims, at=e.at,
            horizon_start=stream_time[e.partition] - horizon)
    return out


def _take_slots(partition: int, dims: dict[str, str],
                slots: dict[tuple[int, str], dict[str, int]],
                dim_slots: dict[int, list[str]], *, cap: int, max_dims: int | None,
                max_response_dims: int | None, at: int, horizon_start: int) -> set[str]:
    """The `<dimension>:<value>` segments an event at `at` with `dims` counts in, taking
    the partition's dimension and value slots first come: past `max_dims` distinct
    dimensions a new one does not count; a value of a dimension whose `cap` slots are held
    (`slots`: value → the UTC day it last counted; held while that day ends after
    `horizon_start`) counts as `other` (which never takes a slot); more than
    `max_response_dims` dimensions: none counts."""
    segs: set[str] = set()
    if max_response_dims is not None and len(dims) > max_response_dims:
        return segs
    taken_dims = dim_slots.setdefault(partition, [])
    for dim, value in sorted(dims.items()):
        if max_dims is not None and dim not in taken_dims:
            if len(taken_dims) >= max_dims:
                continue
            taken_dims.append(dim)
        taken = slots.setdefault((partition, dim), {})
        held = {v for v, day in taken.items() if (day + 1) * DAY > horizon_start}
        if value != OTHER:
            if value in held:
                taken[value] = max(taken[value], at // DAY)
            elif len(held) < cap:
                taken[value] = at // DAY
            else:
                value = OTHER
        segs.add(f"{dim}:{value}")
    return segs


def folds(events: Iterable[Ev], horizon: int, *, cap: int,
          dimensions: frozenset[str] | None = None, **caps: int | None) -> dict[Pos, set[str]]:
    """Dimensions folded into `other` per accepted event (only events with a fold); `caps`:
    the dimension caps of `capped_segments`."""
    out: dict[Pos, set[str]] = {}
    capped = capped_segments(events, horizon, cap=cap, dimensions=dimensions, **caps)
    for e in accepted(events, horizon):
        for dim, value in _dims(e, dimensions).items():
            if value != OTHER and f"{dim}:{OTHER}" in capped[(e.partition, e.offset)]:
                out.setdefault((e.partition, e.offset), set()).add(dim)
    return out


def uncounted_dimensions(events: Iterable[Ev], horizon: int, *, cap: int,
                         dimensions: frozenset[str] | None = None,
                         **caps: int | None) -> dict[Pos, set[str]]:
    """Dimensions of each accepted event that count in none of its segments (only events
    with such a dimension): past `max_dims`, or all of them past `max_response_dims`."""
    out: dict[Pos, set[str]] = {}
    capped = capped_segments(events, horizon, cap=cap, dimensions=dimensions, **caps)
    for e in accepted(events, horizon):
        counted = {seg.split(":", 1)[0] for seg in capped[(e.partition, e.offset)]
                   if ":" in seg}
        left = set(_dims(e, dimensions)) - counted
        if left:
            out[(e.partition, e.offset)] = left
    return out


def scores(events: list[Ev], segment: str, start: int, end: int, *,
           segments: Mapping[Pos, set[str]] | None = None,
           min_responses: int | None = None) -> dict[str, Any]:
    """Counts and scores of `segment` over [start, end), by scanning every accepted event.

    `segments`: each event's segments (e.g. from `capped_segments`); default uncapped.
    `min_responses`: also give `low_sample` per survey (omitted when None).
    """
    def segs(e: Ev) -> set[str]:
        return segments_of(e) if segments is None else segments[(e.partition, e.offset)]

    inside = [e for e in events if start <= e.at < end and segment in segs(e)]
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
    if min_responses is not None:
        for survey in out.values():
            survey["low_sample"] = survey["responses"] < min_responses
    return out


def window_scores(events: list[Ev], segment: str, window_ms: int, as_of: int,
                  **kwargs: Any) -> dict[str, Any]:
    """`scores` of the window W as of T: responses with T − W ≤ occurred_at < T."""
    return scores(events, segment, as_of - window_ms, as_of, **kwargs)


def all_segments(events: list[Ev], segments: Mapping[Pos, set[str]] | None = None) -> set[str]:
    """Every segment some accepted event counts in."""
    if not events:
        return set()
    if segments is None:
        return set().union(*(segments_of(e) for e in events))
    return set().union(*(segments[(e.partition, e.offset)] for e in events))


def assert_matches(got: dict[str, Any], want: dict[str, Any], tol: float = 1e-9) -> None:
    """Counts (and flags) equal exactly; scores equal to `tol`; None where the oracle has None."""
    for survey, fields in want.items():
        for name, value in fields.items():
            actual = got[survey][name]
            if value is None or isinstance(value, int):  # bool is an int: exact too
                assert actual == value, (survey, name, actual, value)
            else:
                assert actual is not None and abs(actual - value) <= tol, \
                    (survey, name, actual, value)


def too_late(events: Iterable[Ev], horizon: int) -> set[tuple[int, int]]:
    """(partition, offset) of the events dead-lettered as too late."""
    out = set()
    stream_time: dict[int, int] = {}
    for e in _in_log_order(events):
        st = stream_time.get(e.partition)
        if st is not None and e.at < st - horizon:
            out.add((e.partition, e.offset))
            continue
        stream_time[e.partition] = e.at if st is None else max(st, e.at)
    return out


def sized(events: Iterable[Ev], horizon: int, *, cap: int, max_dims: int | None,
          max_response_dims: int | None, bound: int) -> tuple[dict[Pos, set[str]], set[Pos]]:
    """Segments of each counted event, and the events rejected as `entry_too_large`, when a
    day's segments (per partition and UTC day, every segment taken at its widest: its JSON
    key and 171 bytes for a colon, 8 counters of 20 digits and a comma, plus 40 for the
    entry) may not pass `bound` bytes: an event that would add a segment past it is not
    counted and is not remembered as seen; the value and dimension slots it took stay
    taken, and it moves stream time like every event that is not too late (`stream_times`).
    Otherwise as `accepted` and `capped_segments`."""
    stream_time: dict[int, int] = {}
    seen: set[tuple[str, str]] = set()
    slots: dict[tuple[int, str], dict[str, int]] = {}
    dim_slots: dict[int, list[str]] = {}
    days: dict[tuple[int, int], set[str]] = {}
    counted: dict[Pos, set[str]] = {}
    rejected: set[Pos] = set()
    for e in _in_log_order(events):
        st = stream_time.get(e.partition)
        if st is not None and e.at < st - horizon:
            continue  # too late
        stream_time[e.partition] = e.at if st is None else max(st, e.at)
        if (e.customer_id, e.event_id) in seen:
            continue
        segs = {"all"} | _take_slots(e.partition, _dims(e, None), slots, dim_slots, cap=cap,
                                     max_dims=max_dims, max_response_dims=max_response_dims,
                                     at=e.at, horizon_start=stream_time[e.partition] - horizon)
        day = days.setdefault((e.partition, e.at // DAY), set())
        size = 40 + sum(len(json.dumps(s, ensure_ascii=False).encode()) + 171
                        for s in day | segs)
        if segs - day and size > bound:
            rejected.add((e.partition, e.offset))
            continue
        day |= segs
        seen.add((e.customer_id, e.event_id))
        counted[(e.partition, e.offset)] = segs
    return counted, rejected
