"""A deliberately naive oracle of segment target alerts (`cxstream.core.targets`).

Written from the product rules only, with no cxstream import: no buckets, no counts lists,
no reports on the wire. Every answer is kept as it is and every score is recomputed from
the answers, exactly (fractions), for every window, segment and program.

The rules:

* A partition's stream time is the highest occurred_at of its responses that were not too
  late (older than stream time minus the horizon when they arrived); a duplicate (an
  event_id the customer already has) moves it too, and counts nowhere.
* The boundaries are the multiples of `every` ms. A step that moves a partition's stream
  time from `old` to `new` reports every boundary B with ``old < B + settle <= new`` (the
  last `max_jump` of them; none when the partition had no stream time before the step),
  with the answers the partition counted up to that step; a report's window W holds those
  with occurred_at in ``[B - W, B)``.
* A boundary is decided once every partition reported it, in boundary order. For every
  (window, program with a target, segment) with at least `min_responses` answers of that
  program: a score that misses the target while the segment is not known below gives
  `below_target`, a score that meets it while known below gives `back_on_target`. Nothing
  is known below at first; fewer answers change nothing.
* Scores: NPS = 100 (promoters − detractors) / n, promoters 9–10, detractors 0–6; CSAT =
  100 × the share of answers in the satisfied range; CES = the mean answer. NPS and CSAT
  meet a target at or above it; a CES mean at or below it when the most effort is at the
  top of the scale, at or above it when at the bottom.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Spec:
    """A survey program as its definition writes it."""

    metric: str  # nps | csat | ces
    low: int
    high: int
    band: tuple[int, int] | None = None  # csat: satisfied; ces: high effort
    target: float | None = None


@dataclass(frozen=True)
class Answer:
    """One survey response in a partition's log (`valid` False: it does not decode)."""

    partition: int
    offset: int
    event_id: str
    customer: str
    program: str
    score: int
    at: int
    segments: frozenset[str]
    valid: bool = True


def boundaries(old: int | None, new: int, every: int, settle: int, max_jump: int
               ) -> list[int]:
    """Every multiple B of `every` with ``old < B + settle <= new``, ascending, the last
    `max_jump` of them; none when `old` is None. By enumeration, not arithmetic: every
    multiple between the two bounds is tried."""
    if old is None:
        return []
    lo = old - settle - 2 * every
    hi = new - settle + 2 * every
    k = lo // every - 1
    found = []
    while k * every <= hi:
        b = k * every
        if old < b + settle <= new:
            found.append(b)
        k += 1
    return found[-max_jump:] if max_jump else []


#: (partition, boundary) → the answers the partition counted when it reported it.
Reports = dict[tuple[int, int], list[Answer]]


def stage1(logs: Mapping[int, Sequence[Answer]], *, horizon: int, every: int, settle: int,
           max_jump: int) -> Reports:
    """The reports of every partition, each holding the answers counted up to its step."""
    out: Reports = {}
    for partition, log in logs.items():
        stream_time: int | None = None
        seen: set[tuple[str, str]] = set()
        counted: list[Answer] = []
        for a in log:
            if not a.valid:
                continue
            if stream_time is not None and a.at < stream_time - horizon:
                continue  # too late: changes nothing
            if (a.customer, a.event_id) not in seen:
                seen.add((a.customer, a.event_id))
                counted.append(a)
            new = a.at if stream_time is None else max(stream_time, a.at)
            for b in boundaries(stream_time, new, every, settle, max_jump):
                assert (partition, b) not in out, "a boundary is reported once"
                out[(partition, b)] = list(counted)
            stream_time = new
    return out


def score(spec: Spec, scores: Sequence[int]) -> Fraction:
    n = len(scores)
    if spec.metric == "nps":
        return Fraction(100 * (sum(s >= 9 for s in scores) - sum(s <= 6 for s in scores)), n)
    assert spec.band is not None
    if spec.metric == "csat":
        return Fraction(100 * sum(spec.band[0] <= s <= spec.band[1] for s in scores), n)
    return Fraction(sum(scores), n)


def meets(spec: Spec, value: Fraction) -> bool:
    assert spec.target is not None
    target = Fraction(spec.target)
    if spec.metric == "ces":
        assert spec.band is not None
        effort_at_top = spec.band[1] == spec.high
        return value <= target if effort_at_top else value >= target
    return value >= target


@dataclass(frozen=True)
class Decision:
    kind: str
    program: str
    window: str
    segment: str
    boundary: int
    score: Fraction
    responses: int

    @property
    def name(self) -> tuple[str, str, str, str, int]:
        return self.kind, self.program, self.window, self.segment, self.boundary


def decided(reports: Reports, partitions: int) -> list[int]:
    """The boundaries every partition reported, ascending."""
    by_boundary: dict[int, set[int]] = {}
    for p, b in reports:
        by_boundary.setdefault(b, set()).add(p)
    return sorted(b for b, ps in by_boundary.items() if ps == set(range(partitions)))


def decisions(reports: Reports, partitions: int, windows: Iterable[tuple[str, int]],
              programs: Mapping[str, Spec], min_responses: int,
              targets: Iterable[str]) -> list[Decision]:
    """Every alert of the decided boundaries, in boundary order."""
    windows = list(windows)
    targets = list(targets)
    below: set[tuple[str, str, str]] = set()
    out: list[Decision] = []
    for b in decided(reports, partitions):
        for name, ms in windows:
            inside = [a for p in range(partitions) for a in reports[(p, b)]
                      if b - ms <= a.at < b]
            for segment in sorted({s for a in inside for s in a.segments}):
                for program in targets:
                    spec = programs[program]
                    scores = [a.score for a in inside
                              if a.program == program and segment in a.segments]
                    if len(scores) < max(min_responses, 1):  # none: no score to judge
                        continue
                    value = score(spec, scores)
                    key = (name, program, segment)
                    if not meets(spec, value) and key not in below:
                        below.add(key)
                        kind = "below_target"
                    elif meets(spec, value) and key in below:
                        below.discard(key)
                        kind = "back_on_target"
                    else:
                        continue
                    out.append(Decision(kind, program, name, segment, b, value, len(scores)))
    return out
