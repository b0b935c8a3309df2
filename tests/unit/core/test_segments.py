"""Segments: which keys a response counts in, the per-dimension value cap and its report,
and validation of segment keys named in queries."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxstream.core.model import SurveyResponse
from cxstream.core.segments import dimension_values, parse_segment_key, segment_keys

from . import oracle


def resp(segment: dict[str, str] | None = None, touchpoint: str | None = None,
         channel: str | None = None) -> SurveyResponse:
    return SurveyResponse("e1", "c1", "nps", 9, 1_790_000_000_000, segment or {},
                          touchpoint, channel)


def keys(r: SurveyResponse, **kw: Any) -> tuple[str, ...]:
    kw.setdefault("dimensions", None)
    kw.setdefault("admitted", {})
    kw.setdefault("cap", 50)
    return segment_keys(r, **kw).keys


def test_all_dimensions_by_default_in_a_deterministic_order() -> None:
    r = resp({"region": "eu", "plan": "pro"}, touchpoint="checkout", channel="web")
    assert keys(r) == ("all", "channel:web", "plan:pro", "region:eu", "touchpoint:checkout")
    # Insertion order of the segment object does not matter.
    assert keys(resp({"plan": "pro", "region": "eu"}, "checkout", "web")) == keys(r)


def test_no_segment_counts_only_in_all() -> None:
    res = segment_keys(resp(), dimensions=None, admitted={}, cap=50)
    assert res.keys == ("all",) and res.admit == () and res.folded == ()


def test_explicit_touchpoint_and_channel_win_over_segment_entries() -> None:
    r = resp({"touchpoint": "old", "channel": "x", "plan": "pro"}, touchpoint="new")
    assert keys(r) == ("all", "channel:x", "plan:pro", "touchpoint:new")
    assert dimension_values(r) == {"touchpoint": "new", "channel": "x", "plan": "pro"}


def test_configured_dimensions_only() -> None:
    r = resp({"region": "eu", "plan": "pro"}, touchpoint="checkout", channel="web")
    assert keys(r, dimensions=frozenset({"plan", "channel"})) == ("all", "channel:web", "plan:pro")
    assert keys(r, dimensions=frozenset()) == ("all",)
    assert keys(r, dimensions=frozenset({"tier"})) == ("all",)


def test_values_are_verbatim_and_colons_are_fine() -> None:
    r = resp({"plan": "Pro", "region": "eu:west:1", "note": " spaced "})
    assert keys(r) == ("all", "note: spaced ", "plan:Pro", "region:eu:west:1")
    assert keys(resp({"plan": "pro"})) != keys(resp({"plan": "Pro"}))


def test_cap_admits_then_folds_and_reports() -> None:
    admitted = {"plan": {"free": 0, "pro": 0}}
    new = segment_keys(resp({"plan": "team"}), dimensions=None, admitted=admitted, cap=3)
    assert new.keys == ("all", "plan:team") and new.admit == (("plan", "team"),)
    assert new.folded == ()
    known = segment_keys(resp({"plan": "pro"}), dimensions=None, admitted=admitted, cap=2)
    assert known.keys == ("all", "plan:pro") and known.admit == () and known.folded == ()
    full = segment_keys(resp({"plan": "teem", "region": "eu"}), dimensions=None,
                        admitted=admitted, cap=2)
    assert full.keys == ("all", "plan:other", "region:eu")
    assert full.admit == (("region", "eu"),) and full.folded == ("plan",)


def test_values_admitted_before_a_lower_cap_keep_counting() -> None:
    admitted = {"plan": {"a": 0, "b": 0, "c": 0}}
    assert keys(resp({"plan": "c"}), admitted=admitted, cap=1) == ("all", "plan:c")
    assert keys(resp({"plan": "d"}), admitted=admitted, cap=1) == ("all", "plan:other")


def test_cap_zero_folds_everything_and_other_is_reserved() -> None:
    r = segment_keys(resp({"plan": "pro"}, channel="web"), dimensions=None, admitted={}, cap=0)
    assert r.keys == ("all", "channel:other", "plan:other") and r.folded == ("channel", "plan")
    assert r.admit == ()
    # The literal value "other" lands in <dimension>:other without a slot or a fold report.
    lit = segment_keys(resp({"plan": "other"}), dimensions=None, admitted={}, cap=1)
    assert lit.keys == ("all", "plan:other") and lit.admit == () and lit.folded == ()
    with pytest.raises(ValueError, match="negative"):
        segment_keys(resp(), dimensions=None, admitted={}, cap=-1)


def test_a_slot_not_seen_within_the_horizon_goes_to_a_new_value() -> None:
    """Slots remember the last day their value counted; one whose day is before `live_from`
    is dead: it no longer holds its value, and its room goes to the next new value."""
    admitted = {"plan": {"junk": 10, "pro": 14}}

    def at(value: str, day: int, live_from: int, cap: int = 2) -> Any:
        return segment_keys(resp({"plan": value}), dimensions=None, admitted=admitted,
                            cap=cap, day=day, live_from=live_from)

    # Both live: a third value folds; a live one counts, and reports a later day.
    full = at("team", 15, 10)
    assert full.keys == ("all", "plan:other") and full.folded == ("plan",)
    seen = at("pro", 15, 10)
    assert seen.keys == ("all", "plan:pro") and seen.seen == (("plan", "pro"),)
    assert seen.admit == () and seen.prune == ()
    assert at("pro", 13, 10).seen == ()  # an earlier day: nothing to remember
    # "junk" is dead from day 11 on: the new value takes a slot, dropping the dead one first.
    new = at("team", 15, 11)
    assert new.keys == ("all", "plan:team") and new.admit == (("plan", "team"),)
    assert new.prune == ("plan",) and new.folded == ()
    # A dead slot does not hold its own value either: it is taken again, anew.
    back = at("junk", 15, 11)
    assert back.keys == ("all", "plan:junk") and back.admit == (("plan", "junk"),)
    assert back.prune == ("plan",)
    # Room left without dropping anything: no prune.
    roomy = at("team", 15, 11, cap=3)
    assert roomy.admit == (("plan", "team"),) and roomy.prune == ()
    # Every slot dead but one, under a lowered cap of one: the live one keeps it.
    assert at("team", 15, 11, cap=1).keys == ("all", "plan:other")
    assert at("team", 15, 15, cap=1).keys == ("all", "plan:team")


VALUES = st.sampled_from(["a", "b", "c", "d", "other", "A", "x:y"])
DIMS = st.sampled_from(["plan", "region", "touchpoint", "channel", "all"])


@given(st.lists(st.tuples(st.dictionaries(DIMS, VALUES, max_size=4),
                          st.none() | VALUES, st.none() | VALUES), max_size=40),
       st.integers(0, 4),
       st.none() | st.frozensets(st.sampled_from(["plan", "region", "touchpoint", "channel"])))
def test_cap_equals_the_oracle_first_come_rule(
        rows: list[tuple[dict[str, str], str | None, str | None]], cap: int,
        dimensions: frozenset[str] | None) -> None:
    """Applying `admit` as the caller must gives the oracle's segments and folds; the cap is
    never exceeded; keys start with `all`, are unique and in a stable order."""
    events = [oracle.Ev(0, i, f"e{i}", "c", "nps", 9, 0, seg, tp, ch)
              for i, (seg, tp, ch) in enumerate(rows)]
    want = oracle.capped_segments(events, 10**9, cap=cap, dimensions=dimensions)
    want_folds = oracle.folds(events, 10**9, cap=cap, dimensions=dimensions)
    admitted: dict[str, dict[str, int]] = {}
    for e in events:
        r = SurveyResponse(e.event_id, e.customer_id, "nps", 9, 0, e.segment, e.touchpoint,
                           e.channel)
        got = segment_keys(r, dimensions=dimensions, admitted=admitted, cap=cap)
        assert got.keys[0] == "all" and len(set(got.keys)) == len(got.keys)
        assert list(got.keys[1:]) == sorted(got.keys[1:], key=lambda k: k.split(":", 1)[0])
        assert set(got.keys) == want[(0, e.offset)]
        assert set(got.folded) == want_folds.get((0, e.offset), set())
        for dim, value in got.admit:
            assert value not in admitted.get(dim, {})
            admitted.setdefault(dim, {})[value] = 0
        assert all(len(v) <= cap for v in admitted.values())


def test_dimensions_past_the_partition_cap_do_not_count_and_are_reported() -> None:
    dims = {"plan": 0, "region": 3}
    r = resp({"plan": "pro", "region": "eu", "tier": "gold", "zone": "z1"}, touchpoint="web")
    got = segment_keys(r, dimensions=None, admitted={}, cap=50, dims=dims, max_dims=3)
    # One slot left: the first new dimension in name order takes it.
    assert got.keys == ("all", "plan:pro", "region:eu", "tier:gold")
    assert got.admit_dims == ("tier",) and got.dropped == ("touchpoint", "zone")
    assert got.too_many == 0
    # Admitted dimensions keep counting even once the cap is lowered.
    low = segment_keys(r, dimensions=None, admitted={}, cap=50, dims=dims, max_dims=1)
    assert low.keys == ("all", "plan:pro", "region:eu") and low.admit_dims == ()


def test_a_response_with_too_many_dimensions_counts_in_all_only() -> None:
    r = resp({f"d{i}": "v" for i in range(4)}, touchpoint="web", channel="app")
    got = segment_keys(r, dimensions=None, admitted={}, cap=50, dims={}, max_dims=20,
                       max_response_dims=5)
    assert got.keys == ("all",) and got.too_many == 6
    assert got.admit == () and got.admit_dims == () and got.dropped == ()
    # Only counted dimensions count towards the bound.
    only = segment_keys(r, dimensions=frozenset({"d0", "d1"}), admitted={}, cap=50,
                        max_response_dims=2)
    assert only.keys == ("all", "d0:v", "d1:v") and only.too_many == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.dictionaries(st.sampled_from(["a", "b", "c", "d", "e", "f"]),
                                          VALUES, max_size=5),
                          st.none() | VALUES, st.none() | VALUES), max_size=40),
       st.integers(0, 3), st.integers(0, 4), st.integers(0, 6))
def test_dimension_caps_equal_the_oracle_first_come_rule(
        rows: list[tuple[dict[str, str], str | None, str | None]], cap: int, max_dims: int,
        max_response_dims: int) -> None:
    """With the dimension caps, applying `admit` and `admit_dims` as the caller must gives
    the oracle's segments, folds and uncounted dimensions; neither cap is exceeded."""
    events = [oracle.Ev(0, i, f"e{i}", "c", "nps", 9, 0, seg, tp, ch)
              for i, (seg, tp, ch) in enumerate(rows)]
    caps = {"max_dims": max_dims, "max_response_dims": max_response_dims or None}
    want = oracle.capped_segments(events, 10**9, cap=cap, **caps)
    want_folds = oracle.folds(events, 10**9, cap=cap, **caps)
    want_left = oracle.uncounted_dimensions(events, 10**9, cap=cap, **caps)
    admitted: dict[str, dict[str, int]] = {}
    dims: dict[str, int] = {}
    for e in events:
        r = SurveyResponse(e.event_id, e.customer_id, "nps", 9, 0, e.segment, e.touchpoint,
                           e.channel)
        got = segment_keys(r, dimensions=None, admitted=admitted, cap=cap, dims=dims,
                           max_dims=max_dims, max_response_dims=max_response_dims)
        assert set(got.keys) == want[(0, e.offset)]
        assert set(got.folded) == want_folds.get((0, e.offset), set())
        left = set(got.dropped) | (set(dimension_values(r)) if got.too_many else set())
        assert left == want_left.get((0, e.offset), set())
        for dim in got.admit_dims:
            assert dim not in dims
            dims[dim] = e.offset
        for dim, value in got.admit:
            admitted.setdefault(dim, {})[value] = 0
        assert len(dims) <= max_dims and all(len(v) <= cap for v in admitted.values())
        assert set(admitted) <= set(dims)


@pytest.mark.parametrize("text,want", [
    ("all", "all"), ("ALL", "all"), ("plan:pro", "plan:pro"), ("Plan:Pro", "plan:Pro"),
    ("region:eu:west", "region:eu:west"), ("touchpoint:checkout", "touchpoint:checkout"),
    ("plan:other", "plan:other"), ("plan: x", "plan: x"), ("d_2:" + "v" * 128, "d_2:" + "v" * 128),
])
def test_parse_segment_key_normalises(text: str, want: str) -> None:
    assert parse_segment_key(text) == want


@pytest.mark.parametrize("text,message", [
    ("", "'all' or '<dimension>:<value>'"), ("plan", "'all' or '<dimension>:<value>'"),
    ("plan:", "empty value"), (":pro", "dimension must start with a letter"),
    ("2plan:pro", "dimension must start with a letter"), ("pl an:pro", "dimension"),
    ("plan-x:pro", "dimension"), ("\u212aey:v", "dimension"),  # Kelvin sign, not a "k"
    ("plan:" + "v" * 129, "longer than 128"), ("d" * 65 + ":v", "at most 64"),
])
def test_parse_segment_key_errors_are_clear(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_segment_key(text)
