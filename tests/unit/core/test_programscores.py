"""Scores per program and the metric-level view (`cxstream.core.programscores`), against a
brute-force oracle over the answers themselves: arbitrary programs (scales, ranges and
targets of every kind, CSAT 1–10 with satisfied [8, 10] and CES 1–7 among them, programs no
longer in the registry), answers over segments and partitions, stored as the data model
says (every answer under its segments' own keys, a non-built-in's also under its program
keys; keys known in retention without answers in the window count zero)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxstream.core.programs import BUILTINS, Program, Registry, define
from cxstream.core.programscores import (
    SegmentCounts,
    by_segment,
    combine,
    describe,
    included,
    metric_view,
    own_counts,
    program_view,
    segments_of,
    select,
)
from cxstream.core.scoring import WIDTH, merge, zero
from cxstream.core.segments import program_key

SEGMENTS = ["all", "plan:free", "plan:pro", "region:eu", "path:a/b"]
CSAT_10 = define("csat-10", "csat", scale=[1, 10], satisfied=[8, 10], target=80)
CES_7 = define("ces-7", "ces", scale=[1, 7], target=3)


# -- the independent oracle ------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    program: Program
    score: int
    segments: frozenset[str]
    partition: int
    inside: bool  # within the window queried (outside: its keys are known, count zero)


def _nps(scores: list[int]) -> dict[str, Any]:
    n = len(scores)
    p = sum(s >= 9 for s in scores)
    d = sum(s <= 6 for s in scores)
    out: dict[str, Any] = {"responses": n, "promoters": p, "passives": n - p - d,
                           "detractors": d, "score": None, "margin_of_error": None}
    if n:
        ps, ds = p / n, d / n
        out["score"] = 100 * (ps - ds)
        out["margin_of_error"] = 1.96 * 100 * math.sqrt(max(ps + ds - (ps - ds) ** 2, 0) / n)
    return out


def _csat(answers: list[Answer]) -> dict[str, Any]:
    sat = 0
    for a in answers:
        low, high = a.program.satisfied or (0, -1)
        sat += low <= a.score <= high
    n = len(answers)
    return {"responses": n, "satisfied": sat, "score": 100 * sat / n if n else None}


def _ces(answers: list[Answer]) -> dict[str, Any]:
    high = 0
    for a in answers:
        low, top = a.program.high_effort or (0, -1)
        high += low <= a.score <= top
    n = len(answers)
    return {"responses": n, "mean": sum(a.score for a in answers) / n if n else None,
            "high_effort_share": high / n if n else None}


def oracle_metric(answers: list[Answer], metric: str) -> dict[str, Any]:
    mine = [a for a in answers if a.program.metric == metric]
    if metric == "nps":
        return _nps([a.score for a in mine])
    return _csat(mine) if metric == "csat" else _ces(mine)


def oracle_program(answers: list[Answer], program: Program) -> dict[str, Any]:
    part = oracle_metric([a for a in answers if a.program.id == program.id], program.metric)
    score = part["mean"] if program.metric == "ces" else part["score"]
    meets = None
    if program.target is not None and score is not None:
        if program.metric == "ces" and program.high_effort is not None \
                and program.high_effort[1] == program.scale[1]:
            meets = score <= program.target
        else:
            meets = score >= program.target
    return {"part": part, "meets": meets}


def oracle_view(answers: list[Answer], registry: Registry) -> dict[str, Any]:
    out = {m: oracle_metric(answers, m) for m in ("nps", "csat", "ces")}
    for m in out:
        out[m]["programs"] = sorted({a.program.id for a in answers if a.program.metric == m})
    ces = {a.program.id: a.program for a in answers if a.program.metric == "ces"}
    if len(ces) > 1:
        if any(pid not in registry for pid in ces):
            out["ces"]["mean"] = None
        elif len({(p.scale, p.high_effort == (p.high_effort[0], p.scale[1]))
                  for p in ces.values() if p.high_effort is not None}) > 1:
            out["ces"]["mean"] = None
    return out


def close(got: Any, want: Any) -> bool:
    if want is None or isinstance(want, (bool, int, str, list)):
        return bool(got == want)
    return got is not None and abs(got - want) <= 1e-9


def assert_part(got: dict[str, Any], want: dict[str, Any], context: Any) -> None:
    for name, value in want.items():
        assert close(got[name], value), (context, name, got[name], value)


# -- how the stream stores answers (the data model) ------------------------------------------
def stored(answers: list[Answer]) -> dict[int, dict[str, list[int]]]:
    """Partition → stored key → counts over the window."""
    out: dict[int, dict[str, list[int]]] = {}
    for a in answers:
        part = out.setdefault(a.partition, {})
        inc = a.program.increment(a.score)
        for segment in a.segments:
            keys = [segment]
            if a.program.id not in BUILTINS:
                keys.append(program_key(a.program.id, segment))
            for key in keys:
                counts = part.setdefault(key, zero())
                if a.inside:
                    for position, amount in inc:
                        counts[position] += amount
    return out


def summed(parts: dict[int, dict[str, list[int]]]) -> dict[str, list[int]]:
    total: dict[str, list[int]] = {}
    for part in parts.values():
        for key, counts in part.items():
            total[key] = merge(total.get(key) or zero(), counts)
    return total


# -- strategies ------------------------------------------------------------------------------
@st.composite
def programs(draw: st.DrawFn, pid: str) -> Program:
    metric = draw(st.sampled_from(["nps", "csat", "ces"]))
    if metric == "nps":
        return define(pid, "nps", target=draw(st.none() | st.integers(-100, 100)),
                      turns=draw(st.booleans()))
    # Common scales often (programs sharing one), any other scale too.
    low, high = draw(st.sampled_from([(1, 5), (1, 7)]) | st.integers(-5, 5).flatmap(
        lambda lo: st.tuples(st.just(lo), st.integers(lo + 1, lo + 9))))
    width = draw(st.integers(1, high - low))  # the range: never the whole scale
    at_top = draw(st.booleans())
    rng = [high - width + 1, high] if at_top else [low, low + width - 1]
    if metric == "csat":
        return define(pid, "csat", scale=[low, high], satisfied=rng,
                      target=draw(st.none() | st.integers(0, 100)))
    return define(pid, "ces", scale=[low, high], high_effort=rng,
                  target=draw(st.none() | st.integers(low, high)))


@st.composite
def worlds(draw: st.DrawFn) -> tuple[Registry, list[Program], list[Answer], int]:
    """(registry, every program with answers, the answers, min_responses): some programs
    have answers but left the registry (a file that no longer lists them)."""
    n = draw(st.integers(0, 5))
    extra = [draw(programs(f"p{i}")) for i in range(n)]
    extra += draw(st.lists(st.sampled_from([CSAT_10, CES_7]), max_size=2, unique=True))
    retired = {p.id for p in extra if draw(st.integers(0, 4)) == 0}
    registry = Registry([*BUILTINS, *(p for p in extra if p.id not in retired)])
    every = [*BUILTINS, *extra]
    answers = []
    for _ in range(draw(st.integers(0, 40))):
        program = draw(st.sampled_from(every))
        score = draw(st.integers(program.scale[0], program.scale[1]))
        segs = {"all", *draw(st.lists(st.sampled_from(SEGMENTS[1:]), max_size=3))}
        answers.append(Answer(program, score, frozenset(segs), draw(st.integers(0, 2)),
                              draw(st.integers(0, 4)) > 0))
    return registry, every, answers, draw(st.integers(1, 5))


# -- the properties --------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(worlds())
def test_per_program_and_metric_level_scores_equal_the_oracle(
        world: tuple[Registry, list[Program], list[Answer], int]) -> None:
    registry, every, answers, min_responses = world
    groups = by_segment(summed(stored(answers)))
    known = {s for a in answers for s in a.segments}
    assert set(groups) == known  # every segment, none of the program keys
    for segment, group in groups.items():
        inside = [a for a in answers if a.inside and segment in a.segments]
        for program in every:
            want = oracle_program(inside, program)
            got = program_view(group, program, min_responses=min_responses)
            assert got["program"] == program.id and got["scale"] == list(program.scale)
            assert got["target"] == program.target and got["meets_target"] == want["meets"]
            assert set(got) == {"program", "scale", "target", "meets_target", program.metric}
            assert_part(got[program.metric], want["part"], (segment, program.id))
            assert got[program.metric]["low_sample"] == (
                want["part"]["responses"] < min_responses)
        view = metric_view(group, registry, min_responses=min_responses)
        want_view = oracle_view(inside, registry)
        for metric, part in want_view.items():
            assert_part(view[metric], part, (segment, metric))
            assert view[metric]["low_sample"] == (part["responses"] < min_responses)
        has_mean = want_view["ces"]["mean"] is not None
        assert (view["ces"]["mean_withheld"] is None) == (
            has_mean or not want_view["ces"]["responses"]), (segment, view["ces"])


@settings(max_examples=100, deadline=None)
@given(worlds())
def test_partials_summed_in_any_grouping_give_the_same_scores(
        world: tuple[Registry, list[Program], list[Answer], int]) -> None:
    """Per-program counts are additive: summing the segments' groups (`combine`) equals the
    groups of the summed answers, program by program."""
    registry, every, answers, _ = world
    parts = stored(answers)
    per_part = [by_segment(part) for part in parts.values()]
    total = by_segment(summed(parts))
    for segment, group in total.items():
        merged = combine(g[segment] for g in per_part if segment in g)
        for program in every:
            assert own_counts(merged, program.id) == own_counts(group, program.id)
        assert merged.total == group.total


def test_state_of_earlier_releases_reads_as_the_builtins() -> None:
    """Only segment keys (no program keys): each built-in's own counts are all of its
    metric, and the view names only built-ins."""
    counts = {"all": [3, 1, 2, 4, 3, 2, 7, 1], "plan:pro": [1, 0, 0, 0, 0, 0, 0, 0]}
    groups = by_segment(counts)
    assert own_counts(groups["all"], "nps") == [3, 1, 2, 0, 0, 0, 0, 0]
    assert own_counts(groups["all"], "csat") == [0, 0, 0, 4, 3, 0, 0, 0]
    assert own_counts(groups["all"], "ces") == [0, 0, 0, 0, 0, 2, 7, 1]
    assert included(groups["all"]) == {"nps": ["nps"], "csat": ["csat"], "ces": ["ces"]}
    assert included(groups["plan:pro"]) == {"nps": ["nps"], "csat": [], "ces": []}
    view = metric_view(groups["all"], BUILTINS, min_responses=1)
    assert view["ces"]["mean"] == 3.5 and view["ces"]["mean_withheld"] is None


def test_a_csat_1_to_10_reads_satisfied_8_to_10() -> None:
    registry = Registry([*BUILTINS, CSAT_10, CES_7])
    answers = [Answer(CSAT_10, s, frozenset({"all"}), 0, True) for s in (10, 9, 8, 7, 3)]
    answers += [Answer(BUILTINS["csat"], 4, frozenset({"all"}), 1, True)]
    group = by_segment(summed(stored(answers)))["all"]
    got = program_view(group, CSAT_10, min_responses=1)
    assert got["csat"]["satisfied"] == 3 and got["csat"]["score"] == 60.0
    assert got["meets_target"] is False and got["target"] == 80.0
    assert program_view(group, BUILTINS["csat"], min_responses=1)["csat"]["score"] == 100.0
    view = metric_view(group, registry, min_responses=1)
    assert view["csat"]["score"] == pytest.approx(400 / 6)
    assert view["csat"]["programs"] == ["csat", "csat-10"]


def test_the_ces_mean_across_scales_is_withheld_and_says_what_to_do() -> None:
    registry = Registry([*BUILTINS, CES_7])
    answers = [Answer(CES_7, 7, frozenset({"all"}), 0, True),
               Answer(BUILTINS["ces"], 1, frozenset({"all", "plan:pro"}), 0, True)]
    groups = by_segment(summed(stored(answers)))
    view = metric_view(groups["all"], registry, min_responses=1)
    assert view["ces"]["mean"] is None and view["ces"]["high_effort_share"] == 0.5
    assert "ces-7 (1–7" in view["ces"]["mean_withheld"]
    assert "?program=" in view["ces"]["mean_withheld"]
    one = metric_view(groups["plan:pro"], registry, min_responses=1)  # one scale here
    assert one["ces"]["mean"] == 1.0 and one["ces"]["mean_withheld"] is None
    assert program_view(groups["all"], CES_7, min_responses=1)["meets_target"] is False


def test_ces_scales_with_the_most_effort_at_opposite_ends_do_not_average() -> None:
    top = define("ces-top", "ces", scale=[1, 7], high_effort=[6, 7])
    bottom = define("ces-bottom", "ces", scale=[1, 7], high_effort=[1, 2])
    registry = Registry([*BUILTINS, top, bottom])
    answers = [Answer(top, 7, frozenset({"all"}), 0, True),
               Answer(bottom, 1, frozenset({"all"}), 0, True)]
    group = by_segment(summed(stored(answers)))["all"]
    view = metric_view(group, registry, min_responses=1)
    assert view["ces"]["mean"] is None and view["ces"]["high_effort_share"] == 1.0
    same = define("ces-other", "ces", scale=[1, 7], high_effort=[5, 7])
    answers[1] = Answer(same, 2, frozenset({"all"}), 0, True)
    group = by_segment(summed(stored(answers)))["all"]
    view = metric_view(group, Registry([*BUILTINS, top, same]), min_responses=1)
    assert view["ces"]["mean"] == 4.5 and view["ces"]["programs"] == ["ces-other", "ces-top"]


def test_grouping_refuses_counts_the_data_model_cannot_hold() -> None:
    with pytest.raises(ValueError, match="without the segment's own key"):
        by_segment({"rnps/plan:pro": [1] + [0] * 7, "all": zero()})
    with pytest.raises(ValueError, match="built-in program nps"):
        by_segment({"nps/all": zero(), "all": zero()})
    with pytest.raises(ValueError, match="entries"):
        by_segment({"all": [0] * (WIDTH - 1)})
    group = by_segment({"all": [1] + [0] * 7, "rnps/all": [2] + [0] * 7})["all"]
    with pytest.raises(ValueError, match="incomplete"):
        own_counts(group, "nps")


def test_select_keeps_a_segments_program_keys_and_segments_of_leaves_them_out() -> None:
    counts = {"all": 1, "rnps/all": 2, "plan:pro": 3, "rnps/plan:pro": 4, "path:a/b": 5,
              "csat-10/path:a/b": 6, "plan:free": 7}
    assert select(counts, ["plan:pro", "path:a/b"]) == {
        "csat-10/path:a/b": 6, "path:a/b": 5, "plan:pro": 3, "rnps/plan:pro": 4}
    assert select(counts, None) == dict(sorted(counts.items()))
    assert select(counts, ["plan:none"]) == {}
    assert segments_of(counts) == ["all", "path:a/b", "plan:free", "plan:pro"]


def test_describe_lists_every_field() -> None:
    assert describe(CSAT_10) == {"id": "csat-10", "metric": "csat", "scale": [1, 10],
                                 "satisfied": [8, 10], "high_effort": None, "target": 80.0,
                                 "turns": False}
    assert describe(BUILTINS["nps"])["turns"] is True
    assert describe(CES_7)["high_effort"] == [6, 7]


def test_a_program_key_without_answers_in_the_window_includes_no_program() -> None:
    group = SegmentCounts(zero(), {"rnps": zero()})
    assert included(group) == {"nps": [], "csat": [], "ces": []}
    rnps = define("rnps", "nps", target=50)
    assert program_view(group, rnps, min_responses=1)["meets_target"] is None
