"""Per-customer state: the turn rules example by example, the dedupe memory, the journey,
the profile, the JSON layouts (and reading the earlier ones), and turns against a
brute-force oracle."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxstream.core.alert import alert_id
from cxstream.core.journey import (
    VERSION,
    CustomerState,
    Journey,
    Turn,
    apply_interaction,
    apply_profile,
    apply_survey,
    category,
    is_duplicate_survey,
    journey_from_json,
    journey_to_json,
    legacy_journey,
)
from cxstream.core.model import CustomerProfile, Interaction, Owner, SurveyResponse
from cxstream.core.programs import BUILTINS, Registry, define, rules

from . import oracle

T0 = 1_790_000_000_000


def nps(eid: str, score: int, at: int, cid: str = "c1", **kw: Any) -> SurveyResponse:
    return SurveyResponse(eid, cid, "nps", score, T0 + at, **kw)


def fold(responses: list[SurveyResponse]) -> tuple[CustomerState, list[Turn | None]]:
    s = CustomerState.empty("c1")
    turns = []
    for r in responses:
        s, t = apply_survey(s, r, horizon_start_ms=0)
        turns.append(t)
    return s, turns


def kinds(turns: list[Turn | None]) -> list[str | None]:
    return [t.kind if t else None for t in turns]


def snapshot(s: CustomerState) -> bytes:
    return orjson.dumps(s.to_json(), option=orjson.OPT_SORT_KEYS)


# -- category and turns -----------------------------------------------------------------------
def test_category_boundaries() -> None:
    assert [category(s) for s in range(11)] == ["detractor"] * 7 + ["passive"] * 2 + ["promoter"] * 2


def test_first_response_detractor_alerts() -> None:
    s, t = fold([nps("a", 3, 0)])
    assert t == [Turn("detractor", None)] and s.is_detractor and s.nps_category == "detractor"


def test_first_response_passive_is_silent_and_promoter_alerts() -> None:
    for score in (7, 8):
        s, t = fold([nps("a", score, 0)])
        assert t == [None] and not s.is_detractor
    for score in (9, 10):
        s, t = fold([nps("a", score, 0)])
        assert t == [Turn("promoter", None)] and s.nps_category == "promoter"


def test_promoter_and_passive_turns() -> None:
    _, t = fold([nps("a", 7, 0), nps("b", 9, 10), nps("c", 10, 20), nps("d", 8, 30),
                 nps("e", 7, 40), nps("f", 10, 50)])
    assert t == [None, Turn("promoter", "passive"), None, Turn("passive", "promoter"), None,
                 Turn("promoter", "passive")]


def test_from_detractor_it_stays_recovered() -> None:
    for score in (7, 8, 9, 10):
        _, t = fold([nps("a", 3, 0), nps("b", score, 10)])
        assert t == [Turn("detractor", None), Turn("recovered", "detractor")]


def test_detractor_then_detractor_is_silent() -> None:
    s, t = fold([nps("a", 3, 0), nps("b", 0, 10), nps("c", 6, 20)])
    assert kinds(t) == ["detractor", None, None] and s.nps["id"] == "c"


@pytest.mark.parametrize("score", [7, 8, 9, 10])
def test_detractor_then_passive_or_promoter_recovers(score: int) -> None:
    s, t = fold([nps("a", 6, 0), nps("b", score, 10)])
    assert t == [Turn("detractor", None), Turn("recovered", "detractor")] and not s.is_detractor


@pytest.mark.parametrize(("first", "previous"), [(9, "promoter"), (10, "promoter"), (7, "passive"), (8, "passive")])
def test_turn_to_detractor_names_the_previous_category(first: int, previous: str) -> None:
    _, t = fold([nps("a", first, 0), nps("b", 6, 10)])
    assert t == [Turn("promoter", None) if first >= 9 else None, Turn("detractor", previous)]


def test_full_life_cycle() -> None:
    _, t = fold([nps("a", 9, 0), nps("b", 2, 10), nps("c", 1, 20), nps("d", 7, 30),
                 nps("e", 10, 40), nps("f", 4, 50)])
    assert t == [Turn("promoter", None), Turn("detractor", "promoter"), None,
                 Turn("recovered", "detractor"), Turn("promoter", "passive"),
                 Turn("detractor", "promoter")]


def test_older_response_is_history_not_a_turn() -> None:
    s, t = fold([nps("a", 9, 100), nps("b", 2, 50)])  # late detractor
    assert t == [Turn("promoter", None), None] and s.nps["id"] == "a" and not s.is_detractor
    assert is_duplicate_survey(s, "b")  # still remembered, so a re-delivery is a no-op
    s, t = fold([nps("a", 2, 100), nps("b", 9, 50)])  # late promoter does not recover
    assert kinds(t) == ["detractor", None] and s.is_detractor


def test_duplicate_is_a_no_op() -> None:
    s, t = fold([nps("a", 2, 0)])
    again, turn = apply_survey(s, nps("a", 2, 0), horizon_start_ms=0)
    assert turn is None and again is s
    # Same event_id with other content: still the same event, still a no-op.
    again, turn = apply_survey(s, nps("a", 9, 99), horizon_start_ms=0)
    assert turn is None and again is s
    _, t = fold([nps("a", 2, 0), nps("a", 2, 0), nps("b", 3, 5), nps("b", 3, 5)])
    assert kinds(t) == ["detractor", None, None, None]


def test_equal_occurred_at_is_broken_by_the_larger_event_id() -> None:
    s, t = fold([nps("b", 9, 0), nps("a", 2, 0)])  # "a" < "b": history
    assert kinds(t) == ["promoter", None] and s.nps["id"] == "b"
    s, t = fold([nps("a", 9, 0), nps("b", 2, 0)])  # "b" > "a": the new latest
    assert kinds(t) == ["promoter", "detractor"] and s.nps["id"] == "b"
    s, t = fold([nps("e9", 2, 0), nps("e10", 9, 0)])  # plain string order: "e10" < "e9"
    assert kinds(t) == ["detractor", None]


def risk(s: CustomerState, eid: str, survey: str, score: int, at: int,
         program: str | None = None) -> tuple[CustomerState, Turn | None]:
    return apply_survey(s, SurveyResponse(eid, "c1", survey, score, T0 + at, program=program),
                        horizon_start_ms=0, rules=RULES)


RULES_REGISTRY = Registry([*BUILTINS, define("csat10", "csat", scale=[1, 10]),
                          define("ces7", "ces", scale=[1, 7]),
                          define("agree", "ces", scale=[1, 7], high_effort=[1, 2])])
RULES = rules(RULES_REGISTRY)


def test_at_risk_csat_and_ces_once_per_turn() -> None:
    s = CustomerState.empty("c1")
    got = []
    for eid, survey, score, at in [("a", "csat", 3, 0), ("b", "csat", 2, 10), ("c", "csat", 1, 20),
                                   ("d", "csat", 4, 30), ("e", "csat", 1, 40),
                                   ("f", "ces", 3, 0), ("g", "ces", 4, 10), ("h", "ces", 5, 20),
                                   ("i", "ces", 1, 30), ("j", "ces", 5, 5)]:  # j: late
        s, t = risk(s, eid, survey, score, at)
        got.append(t.kind if t else None)
    assert got == [None, "at_risk", None, None, "at_risk", None, "at_risk", None, None, None]


def test_at_risk_ranges_of_programs() -> None:
    s = CustomerState.empty("c1")
    s, t = risk(s, "a", "csat", 2, 0, "csat10")
    assert t == Turn("at_risk", None) and s.csat == {"id": "a", "score": 2, "at": T0, "p": "csat10"}
    s, t = risk(s, "b", "csat", 3, 10, "csat10")
    assert t is None
    s, t = risk(s, "c", "ces", 6, 0, "ces7")
    assert t == Turn("at_risk", None)
    s, t = risk(s, "d", "ces", 6, 10, "agree")  # not high effort on its scale: 1-2 is
    assert t is None
    s, t = risk(s, "e", "ces", 1, 20, "agree")
    assert t == Turn("at_risk", None)
    # The previous latest answer is judged on its own program's scale: 2 of csat10 was at
    # risk, so 1 of csat is no new turn.
    s, t = risk(s, "f", "csat", 1, 20)
    assert t == Turn("at_risk", None)  # "b" (3 of csat10) was the latest: not at risk


def test_at_risk_never_on_a_detractor_and_names_the_category() -> None:
    s, _ = fold([nps("a", 2, 0)])
    s, t = risk(s, "b", "csat", 1, 10)
    assert t is None and s.csat is not None and s.is_detractor
    s, t = apply_survey(s, nps("c", 9, 20), horizon_start_ms=0)
    assert t == Turn("recovered", "detractor")
    s, t = risk(s, "d", "csat", 2, 30)  # the latest csat ("b") was at risk already
    assert t is None
    s, t = risk(s, "e", "ces", 5, 30)
    assert t == Turn("at_risk", "promoter")


def test_csat_and_ces_never_alert_and_keep_the_latest() -> None:
    s = CustomerState.empty("c1")
    for eid, survey, score, at in [("x", "csat", 1, 5), ("y", "csat", 5, 1), ("w", "csat", 2, 5),
                                   ("z", "ces", 5, 0), ("z2", "ces", 1, 0), ("z0", "ces", 3, 0)]:
        s, t = apply_survey(s, SurveyResponse(eid, "c1", survey, score, T0 + at), horizon_start_ms=0)
        assert t is None
    assert s.csat == {"id": "x", "score": 1, "at": T0 + 5}  # "x" > "w" on the tie
    assert s.ces == {"id": "z2", "score": 1, "at": T0}
    assert s.nps is None and not s.is_detractor
    assert set(s.seen) == {"x", "y", "w", "z", "z2", "z0"}


def test_csat_does_not_touch_the_nps_state() -> None:
    s, _ = fold([nps("a", 2, 0)])
    s2, t = apply_survey(s, SurveyResponse("c", "c1", "csat", 5, T0 + 10), horizon_start_ms=0)
    assert t is None and s2.nps == s.nps and s2.is_detractor
    s3, t = apply_survey(s2, nps("d", 9, 20), horizon_start_ms=0)
    assert t == Turn("recovered", "detractor")


def test_latest_nps_keeps_its_context() -> None:
    s, _ = fold([nps("a", 4, 0, segment={"plan": "pro"}, touchpoint="support", channel="chat",
                     comment="slow")])
    assert s.nps == {"id": "a", "score": 4, "cat": "detractor", "at": T0, "tp": "support",
                     "ch": "chat", "cmt": "slow", "seg": {"plan": "pro"}}


def test_inputs_are_never_modified() -> None:
    s = CustomerState.empty("c1")
    s = apply_profile(s, CustomerProfile("c1", {"plan": "pro"}, T0, Owner("Ana")))
    j = apply_interaction((), Interaction("i1", "c1", T0, "call"))
    s, _ = apply_survey(s, nps("a", 9, 0), horizon_start_ms=0)
    before, journey_before = snapshot(s), orjson.dumps(j)
    after, turn = apply_survey(s, nps("b", 2, 10), horizon_start_ms=T0 + 5, seen_cap=1)
    apply_survey(s, SurveyResponse("c", "c1", "csat", 2, T0 + 20), horizon_start_ms=0)
    longer = apply_interaction(j, Interaction("i2", "c1", T0 + 30, "chat"), journey_len=1)
    apply_profile(s, CustomerProfile("c1", {"plan": "free"}, T0 + 40, None))
    assert turn is not None and snapshot(s) == before and snapshot(after) != before
    assert orjson.dumps(j) == journey_before and longer != j
    exported = s.to_json()
    exported["s"]["zzz"] = 1
    exported["n"]["score"] = 0
    exported["p"]["owner"]["name"] = "x"
    exported["p"]["seg"]["plan"] = "x"
    restored = CustomerState.from_json(s.to_json())
    restored.profile["seg"]["plan"] = "y"
    assert snapshot(s) == before


def test_events_of_another_customer_are_refused() -> None:
    s = CustomerState.empty("c1")
    with pytest.raises(ValueError):
        apply_survey(s, nps("a", 2, 0, cid="c2"), horizon_start_ms=0)
    with pytest.raises(ValueError):
        apply_profile(s, CustomerProfile("c2", {}, T0))


# -- journey and profile --------------------------------------------------------------------
def test_journey_keeps_the_newest_n_newest_first() -> None:
    j: Journey = ()
    for i in [5, 1, 9, 3, 9, 7]:
        j = apply_interaction(j, Interaction(f"i{i}", "c1", T0 + i, "call"), journey_len=3)
    assert [e[0] for e in j] == ["i9", "i7", "i5"]


def test_journey_default_length_is_ten_and_older_than_all_kept_is_dropped() -> None:
    j: Journey = ()
    for i in range(20, 0, -1):  # newest first: from the 11th on, each is older than all kept
        j = apply_interaction(j, Interaction(f"i{i:02d}", "c1", T0 + i, "call"))
    assert [e[2] - T0 for e in j] == list(range(20, 10, -1))
    full = j
    j = apply_interaction(j, Interaction("old", "c1", T0, "call"))
    assert j is full  # dropped, and stays dropped on re-delivery
    j = apply_interaction(j, Interaction("new", "c1", T0 + 15, "call", "support", "email", "open"))
    assert [e[0] for e in j][:7] == ["i20", "i19", "i18", "i17", "i16", "new", "i15"]
    assert len(j) == 10 and j[5] == ["new", "call", T0 + 15, "support", "email", "open"]


def test_journey_dedupes_by_event_id_and_keeps_older_ones_while_not_full() -> None:
    j = apply_interaction((), Interaction("a", "c1", T0 + 10, "call"), journey_len=3)
    same = apply_interaction(j, Interaction("a", "c1", T0 + 99, "chat"), journey_len=3)
    assert same is j
    j = apply_interaction(j, Interaction("b", "c1", T0 + 1, "call"), journey_len=3)
    j = apply_interaction(j, Interaction("c", "c1", T0 + 10, "call"), journey_len=3)  # tie: "c" > "a"
    assert [e[0] for e in j] == ["c", "a", "b"]


def test_profile_latest_by_updated_at() -> None:
    s = CustomerState.empty("c1")
    s = apply_profile(s, CustomerProfile("c1", {"plan": "pro"}, T0 + 10, Owner("Ana", "a@x.io")))
    s = apply_profile(s, CustomerProfile("c1", {"plan": "free"}, T0 + 5, Owner("Old")))
    assert s.profile == {"seg": {"plan": "pro"}, "owner": {"name": "Ana", "email": "a@x.io", "slack": None},
                         "at": T0 + 10}
    s = apply_profile(s, CustomerProfile("c1", {"plan": "ent"}, T0 + 10, None))  # tie: later message wins
    assert s.profile == {"seg": {"plan": "ent"}, "owner": None, "at": T0 + 10}
    s = apply_profile(s, CustomerProfile("c1", {}, T0 + 20, Owner(slack="@bo")))
    assert s.profile["owner"] == {"name": None, "email": None, "slack": "@bo"} and s.profile["seg"] == {}


# -- bounded dedupe memory ------------------------------------------------------------------
def test_seen_ids_older_than_the_horizon_are_pruned() -> None:
    s = CustomerState.empty("c1")
    for i in range(5):
        s, _ = apply_survey(s, SurveyResponse(f"e{i}", "c1", "csat", 3, T0 + i * 1000), horizon_start_ms=0)
    s, _ = apply_survey(s, SurveyResponse("e5", "c1", "csat", 3, T0 + 5000), horizon_start_ms=T0 + 3000)
    assert s.seen == {"e3": T0 + 3000, "e4": T0 + 4000, "e5": T0 + 5000}  # at == start is kept
    # A response already older than the horizon is applied but not remembered.
    s, _ = apply_survey(s, nps("old", 2, 1000), horizon_start_ms=T0 + 3000)
    assert "old" not in s.seen and s.nps["id"] == "old"


def test_seen_ids_are_capped_oldest_first() -> None:
    s = CustomerState.empty("c1")
    for i in [3, 1, 4, 0, 5, 9, 2, 6]:
        s, _ = apply_survey(s, SurveyResponse(f"e{i}", "c1", "ces", 3, T0 + i), horizon_start_ms=0, seen_cap=4)
        assert len(s.seen) <= 4
    assert set(s.seen) == {"e4", "e5", "e6", "e9"}
    s, _ = apply_survey(s, SurveyResponse("e8b", "c1", "ces", 3, T0 + 5), horizon_start_ms=0, seen_cap=4)
    assert set(s.seen) == {"e5", "e8b", "e6", "e9"}  # tie on occurred_at: smaller id goes first


def test_seen_ids_are_bounded_by_both() -> None:
    s = CustomerState.empty("c1")
    for i in range(30):
        s, _ = apply_survey(s, SurveyResponse(f"e{i}", "c1", "csat", 3, T0 + i * 1000),
                            horizon_start_ms=T0 + 10_000, seen_cap=15)
    assert len(s.seen) == 15 and min(s.seen.values()) == T0 + 15_000


@settings(max_examples=300, deadline=None)
@given(seen=st.dictionaries(st.sampled_from([f"e{i}" for i in range(12)]),
                            st.integers(0, 20), max_size=12),
       at=st.integers(0, 20), horizon=st.integers(0, 21), cap=st.integers(1, 14))
def test_seen_ids_equal_a_brute_force_rule(seen: dict[str, int], at: int, horizon: int,
                                           cap: int) -> None:
    """Kept = the ids not older than the horizon plus the new one, minus the oldest beyond
    the cap; whether or not any aged out (which takes a different path), in the same order,
    and the earlier state's ids untouched."""
    s = CustomerState.empty("c1")
    s = CustomerState.from_json({**s.to_json(), "s": {k: T0 + v for k, v in seen.items()}})
    before = dict(s.seen)
    r = SurveyResponse("new", "c1", "csat", 3, T0 + at)
    after, _ = apply_survey(s, r, horizon_start_ms=T0 + horizon, seen_cap=cap)
    expected = [(k, v) for k, v in {**before, "new": T0 + at}.items() if v >= T0 + horizon]
    while len(expected) > cap:
        expected.remove(min(expected, key=lambda kv: (kv[1], kv[0])))
    assert list(after.seen.items()) == expected
    assert s.seen == before and list(s.seen) == list(before)


def test_default_cap_is_1000() -> None:
    s = CustomerState.empty("c1")
    for i in range(1005):
        s, _ = apply_survey(s, SurveyResponse(f"e{i}", "c1", "csat", 3, T0 + i), horizon_start_ms=0)
    assert len(s.seen) == 1000 and min(s.seen.values()) == T0 + 5


def test_worst_case_state_size_is_bounded() -> None:
    """The bound stated in CustomerState's docstring, with every field at its decoder limit."""
    cid = "c" * 128
    seg = {f"d{i:02d}" + "x" * 61: "v" * 128 for i in range(16)}
    s = CustomerState.empty(cid)
    s = apply_profile(s, CustomerProfile(cid, seg, T0, Owner("n" * 128, "e" * 250 + "@x.io", "s" * 128)))
    j: Journey = ()
    for i in range(30):
        j = apply_interaction(j, Interaction(f"{i:04d}" + "i" * 124, cid, T0 + i, "k" * 64, "t" * 64, "c" * 64, "o" * 64))
    for i in range(1200):
        kind = ("nps", "csat", "ces")[i % 3]
        s, _ = apply_survey(s, SurveyResponse(f"{i:04d}" + "e" * 124, cid, kind, 5, T0 + i, seg, "t" * 64,
                                              "c" * 64, "\u00e9" * 4000), horizon_start_ms=0)
    assert len(s.seen) == 1000 and len(j) == 10
    assert len(orjson.dumps(s.to_json())) + len(orjson.dumps(journey_to_json(j, 2**62))) < 200_000


# -- JSON -----------------------------------------------------------------------------------
def test_json_round_trip_and_layout() -> None:
    s = CustomerState.empty("c1")
    s = apply_profile(s, CustomerProfile("c1", {"plan": "pro"}, T0, Owner("Ana", "ana@example.com", "@ana")))
    s, _ = apply_survey(s, nps("a", 9, 2, comment="ok ✓"), horizon_start_ms=0)
    s, _ = apply_survey(s, SurveyResponse("b", "c1", "csat", 4, T0 + 3), horizon_start_ms=0)
    d = s.to_json()
    assert d["v"] == VERSION == 3 and set(d) == {"v", "id", "n", "cs", "ce", "p", "s"}
    assert CustomerState.from_json(json.loads(json.dumps(d))) == s
    assert CustomerState.from_json(orjson.loads(orjson.dumps(d))) == s
    assert CustomerState.from_json(CustomerState.empty("c9").to_json()) == CustomerState.empty("c9")


def test_version_1_records_are_read() -> None:
    v1 = {"v": 1, "id": "c1", "n": {"id": "a", "score": 3, "cat": "detractor", "at": T0},
          "cs": None, "ce": None, "j": [], "p": None, "s": {"a": T0}}
    s = CustomerState.from_json(v1)
    assert s.is_detractor and s.nps["cmt"] is None and s.nps["seg"] == {}
    assert apply_survey(s, nps("b", 2, 10), horizon_start_ms=0)[1] is None
    assert s.to_json()["v"] == 3 and legacy_journey(v1) == ()


def test_version_2_records_are_read_and_their_journey_taken_out() -> None:
    v2 = {"v": 2, "id": "c1", "n": None, "cs": {"id": "x", "score": 4, "at": T0}, "ce": None,
          "j": [{"id": "i2", "kind": "call", "at": T0 + 2, "tp": "support", "ch": None, "out": "ok"},
                {"id": "i1", "kind": "chat", "at": T0 + 1, "tp": None, "ch": "web", "out": None}],
          "p": None, "s": {"x": T0}}
    s = CustomerState.from_json(v2)
    assert s == CustomerState.from_json(v2, copy=False) and s.csat == v2["cs"]
    assert s.to_json()["v"] == 3 and "j" not in s.to_json()
    j = legacy_journey(v2)
    assert j == (["i2", "call", T0 + 2, "support", None, "ok"], ["i1", "chat", T0 + 1, None, "web", None])
    assert j is not None and apply_interaction(j, Interaction("i0", "c1", T0, "call"), journey_len=2) is j
    assert legacy_journey(s.to_json()) is None  # this layout holds none


def test_journey_entry_round_trip_and_layout() -> None:
    j = apply_interaction((), Interaction("i1", "c1", T0 + 1, "ticket_opened", "support", "email", "open"))
    j = apply_interaction(j, Interaction("i2", "c1", T0 + 2, "call"))
    d = journey_to_json(j, 41)
    assert d == {"v": 3, "o": 41, "j": [["i2", "call", T0 + 2, None, None, None],
                                         ["i1", "ticket_opened", T0 + 1, "support", "email", "open"]]}
    assert journey_from_json(orjson.loads(orjson.dumps(d))) == (j, 41)
    assert journey_from_json(d)[0][0] is j[0]  # shared, not copied
    assert journey_from_json(journey_to_json((), 0)) == ((), 0)


@pytest.mark.parametrize("bad", [None, [], {}, {"v": 2, "j": [], "o": 1}, {"v": 3, "j": []},
                                 {"v": 3, "j": {}, "o": 1}, {"v": 3, "j": [], "o": "1"},
                                 {"v": 3, "j": [["i1", "call", T0]], "o": 1},
                                 {"v": 3, "j": [{"id": "i1"}], "o": 1}])
def test_broken_journey_entries_fail_loudly(bad: Any) -> None:
    with pytest.raises(ValueError):
        journey_from_json(bad)


@pytest.mark.parametrize("bad", [{"v": 99}, [], {"v": 2, "id": "c1", "j": 5},
                                 {"v": 2, "id": "c1", "j": [5]}, {"v": 1, "id": "c1"}])
def test_legacy_journey_of_broken_records_fails_loudly(bad: Any) -> None:
    with pytest.raises(ValueError):
        legacy_journey(bad)


BROKEN = [{"v": 99}, {}, {"v": 2, "id": "c1"},
          {"v": 2, "id": "c1", "n": None, "cs": None, "ce": None, "j": 5, "p": None, "s": {}},
          {"v": 2, "id": "c1", "n": None, "cs": None, "ce": None, "j": [5], "p": None, "s": {}},
          {"v": 2, "id": "c1", "n": None, "cs": None, "ce": None, "j": [], "p": None, "s": 5},
          {"v": 1, "id": "c1", "n": 5, "cs": None, "ce": None, "j": [], "p": None, "s": {}}, []]


@pytest.mark.parametrize("copy", [True, False])
@pytest.mark.parametrize("bad", BROKEN)
def test_unknown_or_broken_records_fail_loudly(bad: dict[str, Any], copy: bool) -> None:
    with pytest.raises(ValueError):
        CustomerState.from_json(bad, copy=copy)


def test_shared_json_shares_instead_of_copying() -> None:
    """`copy=False` (what `step` uses) skips the deep copies: same values, same objects."""
    s = CustomerState.empty("c1")
    s = apply_profile(s, CustomerProfile("c1", {"plan": "pro"}, T0, Owner("Ana")))
    s, _ = apply_survey(s, nps("a", 9, 0, segment={"plan": "pro"}), horizon_start_ms=0)
    d = s.to_json(copy=False)
    assert d == s.to_json() and d["n"] is s.nps and d["p"] is s.profile and d["s"] is s.seen
    r = CustomerState.from_json(d, copy=False)
    assert r == s and r.nps is d["n"] and r.profile is d["p"] and r.seen is d["s"]


def test_version_1_records_are_read_without_copying_too() -> None:
    v1 = {"v": 1, "id": "c1", "n": {"id": "a", "score": 3, "cat": "detractor", "at": T0},
          "cs": None, "ce": None, "j": [], "p": None, "s": {"a": T0}}
    s = CustomerState.from_json(v1, copy=False)
    assert s == CustomerState.from_json(v1)
    assert s.nps == {**v1["n"], "tp": None, "ch": None, "cmt": None, "seg": {}}
    assert v1["n"] == {"id": "a", "score": 3, "cat": "detractor", "at": T0}  # not upgraded in place


# -- properties -----------------------------------------------------------------------------
CUSTOMERS = ("c1", "c2", "c3")


@st.composite
def nps_arrivals(draw: st.DrawFn) -> list[SurveyResponse]:
    """Distinct responses (few customers, few instants: many ties) arriving shuffled, with
    re-deliveries of some of them."""
    keys = draw(st.lists(st.tuples(st.sampled_from(CUSTOMERS), st.text("ab19", min_size=1, max_size=3)),
                         min_size=1, max_size=30, unique=True))
    responses = [SurveyResponse(eid, cid, "nps", draw(st.integers(0, 10)), T0 + draw(st.integers(0, 5)))
                 for cid, eid in keys]
    again = draw(st.lists(st.sampled_from(responses), max_size=15))
    return draw(st.permutations(responses + again))


def oracle_turns(arrivals: list[SurveyResponse], risk: bool = False
                 ) -> list[tuple[str, str | None, str]]:
    """(kind, previous category, alert_id) per turn, from the brute-force oracle
    (`oracle.customer_turns`: after each arrival, the latest of all distinct responses of
    that customer and metric seen so far, recomputed from scratch)."""
    evs = [oracle.Ev.of(r, 0, i) for i, r in enumerate(arrivals)]
    turns = oracle.customer_turns(evs, horizon=10**15, programs=ORACLE_PROGRAMS, risk=risk)
    return [(kind, prev, alert_id(cid, eid)) for (cid, eid), (kind, prev) in turns.items()]


#: `RULES` as the oracle writes them, from the definitions.
ORACLE_PROGRAMS = {**oracle.BUILTIN_PROGRAMS, "csat10": ("csat", 1, 10, (9, 10), False),
                   "ces7": ("ces", 1, 7, (6, 7), False), "agree": ("ces", 1, 7, (1, 2), False),
                   "tnps": ("nps", 0, 10, None, False)}
SCALES = {"nps": (0, 10), "tnps": (0, 10), "csat": (1, 5), "csat10": (1, 10), "ces": (1, 5),
          "ces7": (1, 7), "agree": (1, 7)}
METRIC = {"nps": "nps", "tnps": "nps", "csat": "csat", "csat10": "csat", "ces": "ces",
          "ces7": "ces", "agree": "ces"}


@st.composite
def any_arrivals(draw: st.DrawFn) -> list[SurveyResponse]:
    """Distinct responses of every program (few customers, few instants: many ties)
    arriving shuffled, with re-deliveries of some of them."""
    keys = draw(st.lists(st.tuples(st.sampled_from(CUSTOMERS), st.text("ab19", min_size=1, max_size=3)),
                         min_size=1, max_size=40, unique=True))
    responses = []
    for cid, eid in keys:
        program = draw(st.sampled_from(sorted(SCALES)))
        low, high = SCALES[program]
        responses.append(SurveyResponse(eid, cid, METRIC[program], draw(st.integers(low, high)),
                                        T0 + draw(st.integers(0, 5)), program=program))
    again = draw(st.lists(st.sampled_from(responses), max_size=15))
    return draw(st.permutations(responses + again))


@settings(max_examples=400, deadline=None)
@given(any_arrivals(), st.sampled_from([1, 2, 1000]), st.booleans())
def test_turns_of_every_kind_equal_the_oracle(arrivals: list[SurveyResponse], seen_cap: int,
                                              risk: bool) -> None:
    """Every kind, late (a tie or an earlier `occurred_at` after a later one), duplicated
    and out-of-order answers of several programs; with and without at_risk."""
    all_rules = rules(Registry([*RULES_REGISTRY, define("tnps", "nps", turns=False)]))
    states = {c: CustomerState.empty(c) for c in CUSTOMERS}
    got = []
    for r in arrivals:
        states[r.customer_id], t = apply_survey(
            states[r.customer_id], r, horizon_start_ms=0, seen_cap=seen_cap,
            turns=all_rules[r.program][4], rules=all_rules if risk else None)
        if t is not None:
            got.append((t.kind, t.previous_category, alert_id(r.customer_id, r.event_id)))
    assert got == oracle_turns(arrivals, risk)
    assert len({a for *_, a in got}) == len(got)  # a response turns at most once


@settings(max_examples=400, deadline=None)
@given(nps_arrivals(), st.sampled_from([1, 2, 1000]))
def test_turns_equal_the_oracle(arrivals: list[SurveyResponse], seen_cap: int) -> None:
    """Also with a tiny dedupe memory: turns never depend on it (a forgotten duplicate is
    never strictly newer than the latest response)."""
    states = {c: CustomerState.empty(c) for c in CUSTOMERS}
    got = []
    for r in arrivals:
        states[r.customer_id], t = apply_survey(states[r.customer_id], r, horizon_start_ms=0, seen_cap=seen_cap)
        if t is not None:
            got.append((t.kind, t.previous_category, alert_id(r.customer_id, r.event_id)))
    expected = oracle_turns(arrivals)
    assert got == expected
    assert {(k, a) for k, _, a in got} == {(k, a) for k, _, a in expected}
    assert len({a for *_, a in got}) == len(got)  # a response turns at most once
    for c, s in states.items():
        mine = [r for r in arrivals if r.customer_id == c]
        if mine:
            top = max(mine, key=lambda r: (r.occurred_at, r.event_id))
            assert s.nps is not None and (s.nps["id"], s.nps["score"]) == (top.event_id, top.score)
        else:
            assert s.nps is None


texts = st.one_of(st.none(), st.text(max_size=8))
segments = st.dictionaries(st.sampled_from(["plan", "region", "tier"]), st.text(min_size=1, max_size=5), max_size=3)
events = st.one_of(
    st.builds(SurveyResponse, st.text("abc", min_size=1, max_size=3), st.just("c1"),
              st.sampled_from(["nps", "csat", "ces"]), st.integers(1, 5), st.integers(T0, T0 + 20), segments,
              texts, texts, texts),
    st.builds(Interaction, st.text("ijk", min_size=1, max_size=3), st.just("c1"), st.integers(T0, T0 + 20),
              st.sampled_from(["call", "chat"]), texts, texts, texts),
    st.builds(CustomerProfile, st.just("c1"), segments, st.integers(T0, T0 + 20),
              st.one_of(st.none(), st.builds(Owner, texts, texts, texts))),
)


def fold_any(evs: list[Any], *, horizon_start_ms: int = 0, seen_cap: int = 1000,
             journey_len: int = 10) -> tuple[CustomerState, Journey]:
    s = CustomerState.empty("c1")
    j: Journey = ()
    for e in evs:
        if isinstance(e, SurveyResponse):
            s, _ = apply_survey(s, e, horizon_start_ms=horizon_start_ms, seen_cap=seen_cap)
        elif isinstance(e, Interaction):
            j = apply_interaction(j, e, journey_len=journey_len)
        else:
            s = apply_profile(s, e)
    return s, j


@settings(max_examples=200, deadline=None)
@given(st.lists(events, max_size=40), st.integers(T0, T0 + 20), st.integers(1, 6), st.integers(0, 4))
def test_json_round_trip_and_bounds(evs: list[Any], horizon: int, cap: int, jlen: int) -> None:
    s, j = fold_any(evs, horizon_start_ms=horizon, seen_cap=cap, journey_len=jlen)
    assert CustomerState.from_json(s.to_json()) == s
    assert CustomerState.from_json(orjson.loads(orjson.dumps(s.to_json()))) == s
    assert journey_from_json(orjson.loads(orjson.dumps(journey_to_json(j, 7)))) == (j, 7)
    assert len(s.seen) <= cap and all(at >= horizon for at in s.seen.values())
    assert len(j) <= jlen
    assert [(e[2], e[0]) for e in j] == sorted(((e[2], e[0]) for e in j), reverse=True)


@settings(max_examples=200, deadline=None)
@given(st.lists(events, max_size=40), st.integers(0, 4))
def test_shared_json_round_trip(evs: list[Any], jlen: int) -> None:
    s, _ = fold_any(evs, journey_len=jlen)
    shared = s.to_json(copy=False)
    assert shared == s.to_json()
    assert CustomerState.from_json(shared, copy=False) == s
    assert CustomerState.from_json(orjson.loads(orjson.dumps(shared)), copy=False) == s


interactions = st.builds(Interaction, st.text("ijk", min_size=1, max_size=2), st.just("c1"),
                         st.integers(T0, T0 + 5), st.sampled_from(["call", "chat"]))


@settings(max_examples=300, deadline=None)
@given(st.lists(interactions, max_size=30), st.integers(0, 5))
def test_journey_equals_re_sorting_every_time(arrivals: list[Interaction], jlen: int) -> None:
    """`apply_interaction` inserts in place; the reference re-sorts the whole list."""
    j: Journey = ()
    ref: list[Interaction] = []
    for i in arrivals:
        j = apply_interaction(j, i, journey_len=jlen)
        if any(e.event_id == i.event_id for e in ref):
            continue
        if len(ref) == jlen and (jlen == 0 or (i.occurred_at, i.event_id) < (ref[-1].occurred_at, ref[-1].event_id)):
            continue
        ref = sorted([*ref, i], key=lambda e: (e.occurred_at, e.event_id), reverse=True)[:jlen]
    assert [(e[0], e[2], e[1]) for e in j] == [(e.event_id, e.occurred_at, e.kind) for e in ref]
