"""Survey programs: the built-ins are today's fixed surveys exactly (scoring, decoder, schema);
any valid definition round-trips with its defaults; any one invalid edit of a valid
definition gives exactly the one expected problem; scores, ranges and increments agree with
a brute-force count; the registry's order, lookup and fingerprints."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cxstream.core import scoring
from cxstream.core.decode import decode_survey
from cxstream.core.errors import ErrorCode
from cxstream.core.model import SCORE_RANGES, SURVEY_KINDS
from cxstream.core.programs import (
    BUILTINS,
    FIELDS,
    METRICS,
    SCALE_BOUND,
    Program,
    ProgramError,
    Registry,
    conflicts,
    define,
    valid_id,
)

SCHEMA = Path(__file__).resolve().parents[3] / "schemas" / "survey-response.schema.json"
NOW = 1_793_448_000_000  # 2026-10-31T12:00:00Z
#: Scores around and beyond every built-in scale, and values that are not scores at all.
PROBES: list[Any] = [*range(-3, 14), 10**30, -(10**30), True, False, 4.0, "4", None]

# -- strategies shared with tests/unit/config/test_surveys.py -----------------------------

IDS = st.from_regex(r"[a-z][a-z0-9_-]{0,63}", fullmatch=True)
BAD_IDS = st.one_of(
    st.just(""), st.from_regex(r"[A-Z0-9_-][a-z0-9]{0,10}", fullmatch=True),
    st.from_regex(r"[a-z]{1,5} [a-z]{1,5}", fullmatch=True),
    st.from_regex(r"[a-z][a-z0-9]{64,70}", fullmatch=True),
    st.from_regex(r"[a-z]{1,5}[.:/é][a-z]{0,5}", fullmatch=True))


@st.composite
def definitions(draw: st.DrawFn, ids: st.SearchStrategy[str] = IDS) -> dict[str, Any]:
    """A valid definition as a registry file writes it: id, metric, and any of the optional
    fields (absent = left out)."""
    metric = draw(st.sampled_from(METRICS))
    d: dict[str, Any] = {"id": draw(ids), "metric": metric}
    if metric == "nps":
        if draw(st.booleans()):
            d["scale"] = [0, 10]
        if draw(st.booleans()):
            d["turns"] = draw(st.booleans())
        target = (-100, 100)
    else:
        scale = (1, 5)
        if draw(st.booleans()):
            low = draw(st.integers(-SCALE_BOUND, SCALE_BOUND - 1))
            scale = (low, draw(st.integers(low + 1, SCALE_BOUND) | st.just(low + 1)))
            d["scale"] = list(scale)
        name = "satisfied" if metric == "csat" else "high_effort"
        low, high = scale
        if high - low == 1 or draw(st.booleans()):  # a 2-point scale must say its range
            if draw(st.booleans()):
                d[name] = [draw(st.integers(low + 1, high)), high]
            else:
                d[name] = [low, draw(st.integers(low, high - 1))]
        target = (0, 100) if metric == "csat" else scale
    if draw(st.booleans()):
        d["target"] = draw(st.integers(*target) | st.floats(*target))
    return d


def resolved(d: dict[str, Any]) -> dict[str, Any]:
    """The fields of the Program a definition means, worked out by hand (the oracle)."""
    metric = d["metric"]
    scale = (0, 10) if metric == "nps" else tuple(d.get("scale", (1, 5)))
    top_two = (max(scale[0], scale[1] - 1), scale[1])
    name = {"csat": "satisfied", "ces": "high_effort"}.get(metric)
    target = d.get("target")
    return {"id": d["id"], "metric": metric, "scale": scale,
            "satisfied": tuple(d.get("satisfied", top_two)) if name == "satisfied" else None,
            "high_effort": tuple(d.get("high_effort", top_two)) if name == "high_effort"
            else None,
            "target": None if target is None else float(target),
            "turns": metric == "nps" and d.get("turns", True)}


def build(d: dict[str, Any]) -> Program:
    return define(d["id"], d.get("metric"), **{k: d[k] for k in FIELDS[1:] if k in d})


@st.composite
def invalid_edits(draw: st.DrawFn, ids: st.SearchStrategy[str] = IDS,
                  bad_ids: st.SearchStrategy[Any] = BAD_IDS
                  ) -> tuple[dict[str, Any], str, str]:
    """(a valid definition with one field made wrong, the field, a phrase of its message)."""
    d = draw(definitions(ids))
    p = resolved(d)
    metric, (low, high) = d["metric"], p["scale"]
    own = {"csat": "satisfied", "ces": "high_effort"}.get(metric)
    # (the first ones are drawn most: the rare cases first)
    edits = ["range default"] if own and high - low == 1 else []
    edits += ["metric", "no metric", "scale shape", "target type", "target range", "id"]
    edits += ["scale nps"] if metric == "nps" else ["scale inverted", "scale one point",
                                                    "scale bounds", "turns elsewhere"]
    edits += ["range elsewhere"]
    if metric == "nps":
        edits.append("turns type")
    if own:
        edits += ["range shape", "range inverted", "range outside", "range whole"]
        if high - low >= 2:
            edits.append("range middle")
    edit = draw(st.sampled_from(edits))
    e = dict(d)
    pair = st.tuples(st.integers(-500, 500), st.integers(-500, 500))
    if edit == "id":
        e["id"] = draw(bad_ids)
        return e, "id", "is not a program id"
    if edit == "metric":
        e["metric"] = draw(st.text(max_size=8).filter(lambda m: m not in METRICS)
                           | st.integers() | st.just("NPS"))
        return e, "metric", "is not a metric"
    if edit == "no metric":
        del e["metric"]
        return e, "metric", "missing"
    if edit == "scale shape":
        e["scale"] = draw(st.sampled_from([[], [1], [1, 2, 3], ["1", "5"], [1.0, 5.0],
                                           [True, 5], "1-5", 5]))
        return e, "scale", "is not a scale"
    if edit == "scale nps":
        e["scale"] = list(draw(pair.filter(lambda s: s != (0, 10))))
        return e, "scale", "nps programs always use the scale [0, 10]"
    if edit == "scale inverted":
        a = draw(st.integers(-SCALE_BOUND, SCALE_BOUND - 1))
        e["scale"] = [draw(st.integers(a + 1, SCALE_BOUND)), a]
        return e, "scale", "is inverted"
    if edit == "scale one point":
        a = draw(st.integers(-SCALE_BOUND, SCALE_BOUND))
        e["scale"] = [a, a]
        return e, "scale", "has one point"
    if edit == "scale bounds":
        e["scale"] = list(draw(pair.filter(lambda s: s[0] < s[1] and (
            s[0] < -SCALE_BOUND or s[1] > SCALE_BOUND))))
        return e, "scale", "keep the ends of a scale within"
    if edit == "target type":
        e["target"] = draw(st.sampled_from(["50", True, math.nan, math.inf, -math.inf, [50]]))
        return e, "target", "is not a number"
    if edit == "target range":
        bounds = {"nps": (-100, 100), "csat": (0, 100)}.get(metric, (low, high))
        e["target"] = draw(st.floats(allow_nan=False, allow_infinity=False).filter(
            lambda t: not bounds[0] <= t <= bounds[1]) | st.sampled_from(
            [bounds[0] - 1, bounds[1] + 0.5]))
        return e, "target", "is outside"
    if edit == "turns elsewhere":
        e["turns"] = draw(st.booleans())
        return e, "turns", "applies to nps programs only"
    if edit == "turns type":
        e["turns"] = draw(st.sampled_from(["yes", 1, 0, "true", [True]]))
        return e, "turns", "is not true or false"
    name = own or draw(st.sampled_from(["satisfied", "high_effort"]))
    if edit == "range elsewhere":
        name = draw(st.sampled_from([n for n in ("satisfied", "high_effort") if n != own]))
        e[name] = draw(st.sampled_from([[4, 5], [1, 2], "x"]))
        return e, name, "programs only: remove it"
    if edit == "range shape":
        e[name] = draw(st.sampled_from([[], [4], [3, 4, 5], [4.0, 5.0], ["4", "5"], 4]))
        return e, name, "is not a range"
    if edit == "range inverted":
        a = draw(st.integers(low, high - 1))
        e[name] = [draw(st.integers(a + 1, high)), a]
        return e, name, "is inverted"
    if edit == "range outside":
        e[name] = list(draw(pair.filter(lambda r: r[0] <= r[1] and (
            r[0] < low or r[1] > high))))
        return e, name, "lies outside the scale"
    if edit == "range whole":
        e[name] = [low, high]
        return e, name, "covers the whole scale"
    if edit == "range middle":
        a = draw(st.integers(low + 1, high - 1))
        e[name] = [a, draw(st.integers(a, high - 1))]
        return e, name, "reaches neither end"
    assert edit == "range default"
    del e[name]
    return e, name, "the default (the top two points) would cover the whole scale"


# -- the built-ins are today's surveys -----------------------------------------------------


def test_the_builtins_are_the_three_surveys_of_today() -> None:
    assert BUILTINS.ids == tuple(sorted(SURVEY_KINDS))
    for kind in SURVEY_KINDS:
        p = BUILTINS[kind]
        assert (p.metric, p.scale, p.target) == (kind, SCORE_RANGES[kind], None)
        assert p.fingerprint == f"{kind} {SCORE_RANGES[kind][0]}..{SCORE_RANGES[kind][1]}"
    assert BUILTINS["nps"].turns and not BUILTINS["csat"].turns
    assert BUILTINS["csat"].satisfied == (4, 5) and BUILTINS["ces"].high_effort == (4, 5)
    assert BUILTINS["ces"].effort_at_top  # 5 = most effort


def _scoring_increment(kind: str, score: Any) -> scoring.Increment | None:
    try:
        return scoring.increment(kind, score)
    except ValueError:
        return None


def _decoded(kind: str, score: Any) -> bool | None:
    """Whether today's decoder takes `score` for `kind` (None: rejected for another reason
    than the score's range)."""
    raw = orjson.dumps({"event_id": "e", "customer_id": "c", "survey": kind, "score": score,
                        "occurred_at": "2026-10-31T11:00:00Z"})
    result = decode_survey(raw, b"c", NOW)
    if getattr(result, "code", None) == ErrorCode.SCORE_OUT_OF_RANGE:
        return False
    return True if not hasattr(result, "code") else None


@pytest.mark.parametrize("kind", SURVEY_KINDS)
@pytest.mark.parametrize("score", PROBES)
def test_builtins_agree_with_todays_rules_for_every_score(kind: str, score: Any) -> None:
    p = BUILTINS[kind]
    today = _scoring_increment(kind, score)
    assert p.in_scale(score) == (today is not None)
    if type(score) is int and abs(score) < 10**6:
        assert _decoded(kind, score) == p.in_scale(score)  # the decoder's scale
    if today is None:
        with pytest.raises(ValueError):
            p.increment(score)
        return
    assert p.increment(score) == today
    if kind == "nps":
        assert p.category(score) == scoring.category(score)
    elif kind == "csat":
        assert p.is_satisfied(score) == bool(dict(today)[scoring.CSAT_SATISFIED])
    else:
        assert p.is_high_effort(score) == bool(dict(today)[scoring.CES_HIGH])


def test_builtin_scales_are_the_schemas() -> None:
    schema = json.loads(SCHEMA.read_text())
    bounds = {rule["if"]["properties"]["survey"]["const"]:
              (rule["then"]["properties"]["score"]["minimum"],
               rule["then"]["properties"]["score"]["maximum"]) for rule in schema["allOf"]}
    assert bounds == {p.id: p.scale for p in BUILTINS}


# -- definitions ---------------------------------------------------------------------------


def test_the_issues_programs() -> None:
    delivery = define("csat-delivery", "csat", scale=[1, 10], satisfied=[8, 10], target=80)
    assert (delivery.scale, delivery.satisfied, delivery.target) == ((1, 10), (8, 10), 80.0)
    rnps = define("rnps", "nps", target=50, turns=True)
    assert (rnps.scale, rnps.turns, rnps.target) == ((0, 10), True, 50.0)
    checkout = define("ces-checkout", "ces", scale=[1, 7], high_effort=[6, 7])
    assert checkout.high_effort == (6, 7) and checkout.effort_at_top
    assert define("ces-2", "ces", scale=[1, 7], high_effort=[1, 2]).effort_at_top is False


def test_defaults() -> None:
    assert define("a", "csat") == Program("a", "csat", (1, 5), satisfied=(4, 5))
    assert define("a", "ces", scale=[0, 100]).high_effort == (99, 100)
    assert define("a", "nps").turns and not define("a", "nps", turns=False).turns
    assert define("a", "csat", scale=[0, 1], satisfied=[1, 1]).satisfied == (1, 1)


@given(definitions())
def test_any_valid_definition_round_trips(d: dict[str, Any]) -> None:
    p = build(d)
    assert dataclasses.asdict(p) == resolved(d)
    assert Program(**dataclasses.asdict(p)) == p  # and is itself valid as it stands
    assert p.fingerprint == f"{p.metric} {p.scale[0]}..{p.scale[1]}"


@given(invalid_edits())
def test_any_one_invalid_edit_gives_exactly_its_problem(edit: tuple[dict[str, Any], str, str]
                                                        ) -> None:
    d, field, phrase = edit
    with pytest.raises(ProgramError) as exc:
        build(d)
    ((got, message),) = exc.value.problems
    assert got == field and phrase in message, exc.value.problems
    assert f"{field}: {message}" == str(exc.value)


def test_every_problem_is_listed_once_in_field_order() -> None:
    with pytest.raises(ProgramError) as exc:
        define("Bad id", "csat", scale=[1, 10], satisfied=[5, 7], high_effort=[9, 10],
               target=200, turns=True)
    assert [f for f, _ in exc.value.problems] == ["id", "satisfied", "high_effort", "target",
                                                  "turns"]
    with pytest.raises(ProgramError) as exc:
        define("x", "nps", scale=[1, 10], satisfied=[9, 10], target=-101, turns="yes")
    assert [f for f, _ in exc.value.problems] == ["scale", "satisfied", "target", "turns"]


@given(BAD_IDS | st.integers() | st.none())
def test_valid_ids(value: Any) -> None:
    assert not valid_id(value)


@given(IDS)
def test_ids_that_are_valid(value: str) -> None:
    assert valid_id(value)


@pytest.mark.parametrize("fields, field", [
    ({"satisfied": None}, "satisfied"),  # a csat Program needs its range
    ({"turns": True}, "turns"),
    ({"scale": [1, 5]}, "scale"),  # lists are mutable
    ({"metric": "nps"}, "satisfied"),
])
def test_a_program_is_valid_by_construction(fields: dict[str, Any], field: str) -> None:
    base = dataclasses.asdict(BUILTINS["csat"])
    with pytest.raises(ProgramError) as exc:
        Program(**{**base, **fields})
    assert field in {f for f, _ in exc.value.problems}


def test_a_program_never_changes() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        BUILTINS["nps"].target = 50  # type: ignore[misc]


# -- answers -------------------------------------------------------------------------------


@given(definitions(), st.lists(st.integers(-110, 110), max_size=40))
def test_answers_against_a_brute_force_count(d: dict[str, Any], scores: list[int]) -> None:
    p = build(d)
    (low, high), metric = p.scale, p.metric
    rng = p.satisfied or p.high_effort
    counts = scoring.zero()
    for score in scores:
        assert p.in_scale(score) == (low <= score <= high)
        if not low <= score <= high:
            with pytest.raises(ValueError):
                p.increment(score)
            continue
        counts = scoring.plus(counts, p.increment(score))
        if metric == "csat":
            assert p.is_satisfied(score) == (rng[0] <= score <= rng[1])  # type: ignore[index]
        if metric == "ces":
            assert p.is_high_effort(score) == (rng[0] <= score <= rng[1])  # type: ignore[index]
    valid = [s for s in scores if low <= s <= high]
    inside = sum(rng[0] <= s <= rng[1] for s in valid) if rng else 0
    want = scoring.zero()
    if metric == "nps":
        want[scoring.PROMOTERS] = sum(s >= 9 for s in valid)
        want[scoring.PASSIVES] = sum(s in (7, 8) for s in valid)
        want[scoring.DETRACTORS] = sum(s <= 6 for s in valid)
    elif metric == "csat":
        want[scoring.CSAT_N], want[scoring.CSAT_SATISFIED] = len(valid), inside
    else:
        want[scoring.CES_N], want[scoring.CES_SUM] = len(valid), sum(valid)
        want[scoring.CES_HIGH] = inside
    assert counts == want


@pytest.mark.parametrize("program, method", [
    (BUILTINS["nps"], "is_satisfied"), (BUILTINS["nps"], "is_high_effort"),
    (BUILTINS["csat"], "category"), (BUILTINS["ces"], "is_satisfied")])
def test_a_question_of_another_metric_is_an_error(program: Program, method: str) -> None:
    with pytest.raises(ValueError, match="not"):
        getattr(program, method)(5)


@given(definitions(), st.none() | st.floats(-200, 200))
def test_meets_target(d: dict[str, Any], score: float | None) -> None:
    p = build(d)
    got = p.meets_target(score)
    if p.target is None or score is None:
        assert got is None
    elif p.metric == "ces" and p.high_effort[1] == p.scale[1]:  # type: ignore[index]
        assert got == (score <= p.target)  # less effort is better
    else:
        assert got == (score >= p.target)


# -- the registry --------------------------------------------------------------------------


@given(st.lists(definitions(), max_size=8, unique_by=lambda d: d["id"]))
def test_registry_lookup_and_order(ds: list[dict[str, Any]]) -> None:
    programs = [build(d) for d in ds]
    reg = Registry(programs)
    assert len(reg) == len(programs) and reg.ids == tuple(sorted(p.id for p in programs))
    assert list(reg) == sorted(programs, key=lambda p: p.id)
    assert reg == Registry(reversed(programs)) and hash(reg) == hash(Registry(programs))
    for p in programs:
        assert p.id in reg and reg[p.id] is p and reg.get(p.id) is p
    assert reg.get("not-there") is None and "not-there" not in reg
    for metric in METRICS:
        assert reg.of_metric(metric) == tuple(p for p in reg if p.metric == metric)
    assert reg.fingerprints() == {p.id: p.fingerprint for p in programs}


def test_registry_refuses_an_id_twice() -> None:
    with pytest.raises(ValueError, match="appears twice"):
        Registry([define("a", "nps"), define("a", "csat")])


@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d"]),
                       st.sampled_from(["nps 0..10", "csat 1..5", "csat 1..10", "ces 1..7"])),
       st.lists(definitions(st.sampled_from(["a", "b", "c", "e"])), max_size=4,
                unique_by=lambda d: d["id"]))
def test_conflicts_against_a_brute_force_compare(before: dict[str, str],
                                                 ds: list[dict[str, Any]]) -> None:
    after = Registry(build(d) for d in ds)
    want = []
    for p in sorted(after, key=lambda p: p.id):
        if p.id in before and before[p.id] != f"{p.metric} {p.scale[0]}..{p.scale[1]}":
            want.append((p.id, before[p.id], p.fingerprint))
    assert conflicts(before, after) == want
    assert conflicts(after.fingerprints(), after) == []
