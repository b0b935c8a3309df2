"""Scores per survey program, and the metric-level view, from the summed counts of a window.

The counts of a window (stored key → counts, as `cxstream.api.queries.partition_counts` and
`add_counts` sum them) hold, per segment, the segment's own key (`all`, `plan:pro`): the
METRIC-LEVEL sums over every program, and for every program but the built-ins a key of its
own, `segments.program_key(program, segment)`. From them:

* a non-built-in program's own counts are those of its key;
* a built-in program's (`nps`, `csat`, `ces`) are the segment's sums less every program key
  of the segment, on the positions of its metric: each program fills only the positions of
  its own metric, so the difference is exactly the built-in's answers, and needs no
  registry. State of earlier releases (segment keys only) thus reads as the built-ins;
* the metric-level view is `scoring.summary` of the sums, where a sum means something:
  NPS categories, the CSAT satisfied share and the CES high-effort share always (each answer
  was counted with its own program's ranges); the CES mean only when every CES program with
  answers in the segment and window has one scale, with the most effort at the same end
  (a mean of 1–5 and 1–7 answers is no answer on either scale), else null with the reason.

Guarantee: exact (integer counts, scores computed once here); a count that the sums cannot
hold (a program key with more answers than its segment) is a ValueError, never a guess.

Pure: no I/O. Not compiled: it runs per query and scrape, not per event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Iterable, Mapping, Sequence, TypeVar

from cxstream.core.programs import BUILTINS, METRICS, Metric, Program, Registry
from cxstream.core.scoring import (
    CES_HIGH,
    CES_N,
    CES_SUM,
    CSAT_N,
    CSAT_SATISFIED,
    DETRACTORS,
    PASSIVES,
    PROMOTERS,
    WIDTH,
    Counts,
    merge,
    summary,
    zero,
)
from cxstream.core.segments import split_program_key

__all__ = ["POSITIONS", "SegmentCounts", "by_segment", "combine", "describe", "included",
           "mean_withheld", "metric_view", "own_counts", "program_view", "responses",
           "segments_of", "select"]

#: The positions of a counts list each metric fills (`cxstream.core.scoring`).
POSITIONS: Final[Mapping[Metric, tuple[int, ...]]] = {
    "nps": (PROMOTERS, PASSIVES, DETRACTORS),
    "csat": (CSAT_N, CSAT_SATISFIED),
    "ces": (CES_N, CES_SUM, CES_HIGH),
}


def responses(counts: Sequence[int], metric: Metric) -> int:
    """How many answers of `metric` `counts` holds."""
    if metric == "nps":
        return counts[PROMOTERS] + counts[PASSIVES] + counts[DETRACTORS]
    return counts[CSAT_N] if metric == "csat" else counts[CES_N]


@dataclass(frozen=True, slots=True)
class SegmentCounts:
    """One segment's counts over a window: `total`, the metric-level sums (the segment's own
    key), and `programs`, each non-built-in program's own counts (its program key)."""

    total: Counts
    programs: Mapping[str, Counts] = field(default_factory=dict)


def by_segment(counts: Mapping[str, Sequence[int]]) -> dict[str, SegmentCounts]:
    """The stored keys of a window's `counts` grouped by segment (segments in name order).

    Raises ValueError for a program key of a built-in program (built-ins have none), or of a
    segment whose own key is absent (every answer counts under both)."""
    totals: dict[str, Counts] = {}
    programs: dict[str, dict[str, Counts]] = {}
    for key in sorted(counts):
        value = counts[key]
        if len(value) != WIDTH:
            raise ValueError(f"counts of {key!r} have {len(value)} entries, not {WIDTH}")
        program, segment = split_program_key(key)
        if program is None:
            totals[segment] = list(value)
            continue
        if program in BUILTINS:
            raise ValueError(f"stored key {key!r}: the built-in program {program} has no "
                             "program keys (its counts are the segment's own)")
        programs.setdefault(segment, {})[program] = list(value)
    missing = sorted(set(programs) - set(totals))
    if missing:
        raise ValueError(f"the counts hold program keys of {len(missing)} segments without "
                         "the segment's own key (every answer counts under both): "
                         "the counts summed are incomplete")
    return {segment: SegmentCounts(total, programs.get(segment, {}))
            for segment, total in totals.items()}


def segments_of(keys: Iterable[str]) -> list[str]:
    """The segments among stored `keys` (program keys left out), in name order."""
    return sorted({key for key in keys if split_program_key(key)[0] is None})


V = TypeVar("V")


def select(counts: Mapping[str, V], segments: Iterable[str] | None) -> dict[str, V]:
    """The keys of `counts` that belong to `segments` (None: all of them), in key order: a
    segment's own key and its program keys, which travel together (a program's scores, and
    a built-in's, need both)."""
    if segments is None:
        return {key: counts[key] for key in sorted(counts)}
    wanted = set(segments)
    return {key: counts[key] for key in sorted(counts) if split_program_key(key)[1] in wanted}


def combine(groups: Iterable[SegmentCounts]) -> SegmentCounts:
    """The sum of several segments' counts, program by program (`zero` for none)."""
    total = zero()
    programs: dict[str, Counts] = {}
    for group in groups:
        total = merge(total, group.total)
        for program, counts in group.programs.items():
            cur = programs.get(program)
            programs[program] = list(counts) if cur is None else merge(cur, counts)
    return SegmentCounts(total, programs)


def own_counts(group: SegmentCounts, program: str) -> Counts:
    """The counts of `program`'s own answers in the segment of `group`: a non-built-in's
    program key (zero without one); a built-in's, the segment's sums less every program
    key, on its metric's positions (the others zero). ValueError when that difference is
    negative: the counts were not stored as the data model says."""
    builtin = BUILTINS.get(program)
    if builtin is None:
        counts = group.programs.get(program)
        return zero() if counts is None else list(counts)
    out = zero()
    for position in POSITIONS[builtin.metric]:
        value = group.total[position] - sum(c[position] for c in group.programs.values())
        if value < 0:
            raise ValueError(f"the program keys hold more {builtin.metric} counts than their "
                             "segment's own key: the counts summed are incomplete")
        out[position] = value
    return out


def included(group: SegmentCounts) -> dict[Metric, list[str]]:
    """Metric → the ids of the programs with answers of it in `group` (id order): what
    the metric-level sums are made of. Read from the counts alone (a program no longer in
    the registry still counts, and is still named)."""
    out: dict[Metric, list[str]] = {metric: [] for metric in METRICS}
    ids = sorted({*group.programs, *BUILTINS.ids})
    for program in ids:
        counts = own_counts(group, program)
        for metric in METRICS:
            if responses(counts, metric):
                out[metric].append(program)
    return out


def _scale_text(program: Program) -> str:
    low, high = program.scale
    end = high if program.effort_at_top else low
    return f"{program.id} ({low}–{high}, {end} = most effort)"


def mean_withheld(ces_programs: Sequence[str], registry: Registry) -> str | None:
    """Why the CES mean over the answers of `ces_programs` (ids) is not given, or None when
    it is meaningful: one program, or programs of one scale with the most effort at the same
    end. A program not in `registry` (nor built in) has an unknown scale."""
    if len(ces_programs) < 2:
        return None
    known: list[Program] = []
    unknown: list[str] = []
    for pid in ces_programs:
        program = registry.get(pid) or BUILTINS.get(pid)
        if program is None or program.metric != "ces":
            unknown.append(pid)
        else:
            known.append(program)
    if unknown:
        return (f"the programs {', '.join(unknown)} have CES answers here but are not CES "
                "programs of the registry (CXSTREAM_SURVEYS), so their scales are unknown: "
                "ask for one program's mean with ?program=ID")
    if len({(p.scale, p.effort_at_top) for p in known}) == 1:
        return None
    return (f"the CES programs with answers here use different scales "
            f"({'; '.join(_scale_text(p) for p in known)}), and a mean mixing them is on "
            "none of them: ask for one program's mean with ?program=ID")


def metric_view(group: SegmentCounts, registry: Registry, *, min_responses: int
                ) -> dict[str, Any]:
    """The metric-level scores of a segment: `scoring.summary` of its sums, each metric's
    object naming the `programs` included, and the CES object's `mean_withheld` the reason
    its `mean` is null though it has answers (None otherwise; see `mean_withheld`)."""
    doc = summary(group.total, min_responses=min_responses)
    programs = included(group)
    for metric in METRICS:
        doc[metric]["programs"] = programs[metric]
    why = mean_withheld(programs["ces"], registry)
    if why is not None:
        doc["ces"]["mean"] = None
    doc["ces"]["mean_withheld"] = why
    return doc


def program_view(group: SegmentCounts, program: Program, *, min_responses: int
                 ) -> dict[str, Any]:
    """One program's scores in a segment: `program`, its `scale` and `target`, whether the
    score meets the target (`meets_target`: None without a target or without answers), and
    the object of its metric as `scoring.summary` gives it, from its own counts only."""
    part = summary(own_counts(group, program.id), min_responses=min_responses)[program.metric]
    score = part["mean"] if program.metric == "ces" else part["score"]
    return {"program": program.id, "scale": list(program.scale), "target": program.target,
            "meets_target": program.meets_target(score), program.metric: part}


def describe(program: Program) -> dict[str, Any]:
    """A program as the API lists it: every field, a range None where its metric has
    none."""
    return {"id": program.id, "metric": program.metric, "scale": list(program.scale),
            "satisfied": None if program.satisfied is None else list(program.satisfied),
            "high_effort": None if program.high_effort is None else list(program.high_effort),
            "target": program.target, "turns": program.turns}
