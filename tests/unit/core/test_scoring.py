"""Scoring: category boundaries, the three formulas, the margin of error, empty and small
samples, and the counters' algebra (merge is a commutative monoid with `zero`)."""

from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

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
    add,
    category,
    increment,
    merge,
    nps,
    summary,
    zero,
)

RESPONSES = st.one_of(
    st.tuples(st.just("nps"), st.integers(0, 10)),
    st.tuples(st.just("csat"), st.integers(1, 5)),
    st.tuples(st.just("ces"), st.integers(1, 5)),
)


def counts_of(responses: list[tuple[str, int]]) -> list[int]:
    c = zero()
    for survey, score in responses:
        c = add(c, survey, score)
    return c


@pytest.mark.parametrize("score,want", [(s, "detractor") for s in range(7)]
                         + [(7, "passive"), (8, "passive"), (9, "promoter"), (10, "promoter")])
def test_nps_category_boundaries(score: int, want: str) -> None:
    assert category(score) == want
    slot = {"promoter": PROMOTERS, "passive": PASSIVES, "detractor": DETRACTORS}[want]
    assert add(zero(), "nps", score) == [1 if i == slot else 0 for i in range(WIDTH)]


@pytest.mark.parametrize("score", range(1, 6))
def test_csat_satisfied_is_4_or_5(score: int) -> None:
    c = add(zero(), "csat", score)
    assert c[CSAT_N] == 1 and c[CSAT_SATISFIED] == (score >= 4)
    assert sum(c) == 1 + (score >= 4)


@pytest.mark.parametrize("score", range(1, 6))
def test_ces_sum_and_high_effort_is_4_or_5(score: int) -> None:
    c = add(zero(), "ces", score)
    assert (c[CES_N], c[CES_SUM], c[CES_HIGH]) == (1, score, int(score >= 4))
    assert sum(c) == 1 + score + (score >= 4)


@pytest.mark.parametrize("survey,score", [
    ("nps", -1), ("nps", 11), ("csat", 0), ("csat", 6), ("ces", 0), ("ces", 6),
    ("nps", True), ("nps", 9.0), ("nps", "9"),
])
def test_out_of_range_or_non_integer_scores_are_refused(survey: str, score: object) -> None:
    with pytest.raises(ValueError, match=survey):
        add(zero(), survey, score)  # type: ignore[arg-type]


def test_unknown_survey_and_wrong_width_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown survey"):
        add(zero(), "ces2", 3)
    with pytest.raises(ValueError, match="8 entries"):
        add([0] * 7, "nps", 3)
    with pytest.raises(ValueError, match="8 entries"):
        merge(zero(), [0] * 9)
    with pytest.raises(ValueError, match="8 entries"):
        summary([0] * 9)
    with pytest.raises(ValueError):
        category(11)


@given(RESPONSES)
def test_increment_is_what_add_adds(response: tuple[str, int]) -> None:
    survey, score = response
    c = zero()
    for position, amount in increment(survey, score):
        c[position] += amount
    assert c == add(zero(), survey, score)
    assert all(type(amount) is int for _, amount in increment(survey, score))


@pytest.mark.parametrize("survey,score", [("nps", 11), ("nps", -1), ("csat", 0), ("ces", 6), ("nps", True),
                                          ("nps", 7.0), ("xyz", 3)])
def test_increment_validates(survey: str, score: object) -> None:
    with pytest.raises(ValueError):
        increment(survey, score)  # type: ignore[arg-type]


def test_add_does_not_mutate_its_input() -> None:
    c = zero()
    d = add(c, "nps", 10)
    assert c == zero() and d[PROMOTERS] == 1


def test_hand_computed_example() -> None:
    # 5 promoters, 3 passives, 2 detractors: NPS = 100·(5−2)/10 = 30;
    # p = .5, d = .2: p + d − (p − d)² = .7 − .09 = .61;
    # MoE = 1.96·100·√(.61/10) = 196·0.2469818 = 48.40843
    c = counts_of([("nps", s) for s in (10, 9, 9, 10, 9, 7, 8, 8, 0, 6)]
                  + [("csat", s) for s in (5, 4, 3, 1)]            # 2 of 4 satisfied: 50
                  + [("ces", s) for s in (1, 2, 4, 5, 5)])         # mean 17/5, high 3/5
    s = summary(c, min_responses=5)
    assert s["nps"] == {"responses": 10, "promoters": 5, "passives": 3, "detractors": 2,
                        "score": 30.0, "margin_of_error": pytest.approx(48.4084290, abs=1e-6),
                        "low_sample": False}
    assert s["csat"] == {"responses": 4, "satisfied": 2, "score": 50.0, "low_sample": True}
    assert s["ces"] == {"responses": 5, "mean": 3.4, "high_effort_share": 0.6, "low_sample": False}


@pytest.mark.parametrize("p,pa,d,score,moe", [
    (1, 0, 0, 100.0, 0.0),      # unanimous: no variance
    (0, 0, 1, -100.0, 0.0),
    (0, 4, 0, 0.0, 0.0),
    (1, 0, 1, 0.0, 196 * math.sqrt(1 / 2)),  # p = d = .5: p + d − 0 = 1, n = 2
    (3, 0, 1, 50.0, 196 * math.sqrt(0.75 / 4)),  # p = .75, d = .25: 1 − .25 = .75, n = 4
])
def test_nps_extremes(p: int, pa: int, d: int, score: float, moe: float) -> None:
    got_score, got_moe = nps(p, pa, d)
    assert got_score == score
    assert got_moe == pytest.approx(moe, abs=1e-12)


def test_empty_gives_none_scores_and_low_sample() -> None:
    s = summary(zero())
    assert s == {
        "nps": {"responses": 0, "promoters": 0, "passives": 0, "detractors": 0, "score": None,
                "margin_of_error": None, "low_sample": True},
        "csat": {"responses": 0, "satisfied": 0, "score": None, "low_sample": True},
        "ces": {"responses": 0, "mean": None, "high_effort_share": None, "low_sample": True},
    }
    assert nps(0, 0, 0) == (None, None)


def test_each_survey_empty_independently() -> None:
    s = summary(counts_of([("nps", 9)]))
    assert s["nps"]["score"] == 100.0
    assert s["csat"]["score"] is None and s["ces"]["mean"] is None
    assert s["ces"]["high_effort_share"] is None


@pytest.mark.parametrize("n,low", [(29, True), (30, False), (31, False)])
def test_low_sample_boundary_is_per_survey(n: int, low: bool) -> None:
    c = counts_of([("nps", 9)] * n + [("csat", 5)] * 30 + [("ces", 2)] * 29)
    s = summary(c)
    assert s["nps"]["low_sample"] is low
    assert s["csat"]["low_sample"] is False and s["ces"]["low_sample"] is True
    assert summary(c, min_responses=0)["ces"]["low_sample"] is False


@given(st.lists(RESPONSES, max_size=200), st.integers(0, 50))
def test_summary_equals_the_formulas(responses: list[tuple[str, int]], min_n: int) -> None:
    s = summary(counts_of(responses), min_responses=min_n)
    nps_s = [x for k, x in responses if k == "nps"]
    csat_s = [x for k, x in responses if k == "csat"]
    ces_s = [x for k, x in responses if k == "ces"]
    if nps_s:
        n = len(nps_s)
        p = sum(x >= 9 for x in nps_s) / n
        d = sum(x <= 6 for x in nps_s) / n
        assert s["nps"]["score"] == pytest.approx(100 * (p - d), abs=1e-9)
        assert -100 <= s["nps"]["score"] <= 100
        assert s["nps"]["margin_of_error"] == pytest.approx(
            1.96 * 100 * math.sqrt(max(p + d - (p - d) ** 2, 0) / n), abs=1e-9)
    if csat_s:
        assert s["csat"]["score"] == pytest.approx(100 * sum(x >= 4 for x in csat_s) / len(csat_s))
        assert 0 <= s["csat"]["score"] <= 100
    if ces_s:
        assert s["ces"]["mean"] == pytest.approx(sum(ces_s) / len(ces_s))
        assert 1 <= s["ces"]["mean"] <= 5
        assert 0 <= s["ces"]["high_effort_share"] <= 1
    for name, xs in (("nps", nps_s), ("csat", csat_s), ("ces", ces_s)):
        assert s[name]["responses"] == len(xs)
        assert s[name]["low_sample"] is (len(xs) < min_n)


@given(st.lists(RESPONSES, max_size=60), st.lists(RESPONSES, max_size=60),
       st.lists(RESPONSES, max_size=60))
def test_merge_is_a_commutative_monoid(a: list, b: list, c: list) -> None:
    x, y, z = counts_of(a), counts_of(b), counts_of(c)
    assert merge(x, y) == merge(y, x) == counts_of(a + b)
    assert merge(merge(x, y), z) == merge(x, merge(y, z))
    assert merge(x, zero()) == x


@given(st.lists(RESPONSES, max_size=60))
def test_counts_are_json_friendly(responses: list[tuple[str, int]]) -> None:
    c = counts_of(responses)
    assert isinstance(c, list) and all(type(v) is int for v in c)
    assert orjson.loads(orjson.dumps(c)) == c
    orjson.dumps(summary(c))  # the API renders it as-is
