"""Turn rules and alert documents, example by example and against a brute-force oracle."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from cxstream.core.alert import alert_id, build_alert, cloudevent_headers
from cxstream.core.journey import (
    CustomerState,
    Turn,
    apply_interaction,
    apply_profile,
    apply_survey,
)
from cxstream.core.model import CustomerProfile, Interaction, Owner, SurveyResponse
from cxstream.core.scoring import category

ALERT_SCHEMA = Draft202012Validator(
    json.loads((Path(__file__).resolve().parents[3] / "schemas" / "alert.schema.json").read_text()),
    format_checker=Draft202012Validator.FORMAT_CHECKER)
T0 = 1_790_000_000_000


def nps(eid: str, score: int, at: int, **kw: Any) -> SurveyResponse:
    return SurveyResponse(eid, "c1", "nps", score, T0 + at, **kw)


def fold(responses: list[SurveyResponse]) -> tuple[CustomerState, list[Turn | None]]:
    s = CustomerState.empty("c1")
    turns = []
    for r in responses:
        s, t = apply_survey(s, r, horizon_start_ms=0)
        turns.append(t)
    return s, turns


def kinds(turns: list[Turn | None]) -> list[str | None]:
    return [t.kind if t else None for t in turns]


def test_turn_rules() -> None:
    _, t = fold([nps("a", 3, 0)])
    assert kinds(t) == ["detractor"] and t[0].previous_category is None
    _, t = fold([nps("a", 9, 0), nps("b", 2, 10), nps("c", 1, 20), nps("d", 7, 30), nps("e", 10, 40)])
    assert kinds(t) == [None, "detractor", None, "recovered", None]
    assert t[1].previous_category == "promoter" and t[3].previous_category == "detractor"
    _, t = fold([nps("a", 9, 100), nps("b", 2, 50)])  # older detractor: history, not a turn
    assert kinds(t) == [None, None]
    _, t = fold([nps("a", 2, 0), nps("a", 2, 0), nps("a", 9, 0)])  # duplicates are no-ops
    assert kinds(t) == ["detractor", None, None]
    _, t = fold([nps("b", 9, 0), nps("a", 2, 0)])  # same time: larger event_id wins
    assert kinds(t) == [None, None]
    _, t = fold([nps("a", 9, 0), nps("b", 2, 0)])
    assert kinds(t) == [None, "detractor"]


def test_csat_and_ces_never_alert_and_keep_the_latest() -> None:
    s = CustomerState.empty("c1")
    for eid, survey, score, at in [("x", "csat", 1, 5), ("y", "csat", 5, 1), ("z", "ces", 5, 0)]:
        s, t = apply_survey(s, SurveyResponse(eid, "c1", survey, score, T0 + at), horizon_start_ms=0)
        assert t is None
    assert s.csat == {"id": "x", "score": 1, "at": T0 + 5} and s.ces["id"] == "z"


def test_journey_keeps_the_newest_n() -> None:
    s = CustomerState.empty("c1")
    for i in [5, 1, 9, 3, 9, 7]:
        s = apply_interaction(s, Interaction(f"i{i}", "c1", T0 + i, "call"), journey_len=3)
    assert [e["id"] for e in s.journey] == ["i9", "i7", "i5"]


def test_profile_latest_by_updated_at() -> None:
    s = CustomerState.empty("c1")
    s = apply_profile(s, CustomerProfile("c1", {"plan": "pro"}, T0 + 10, Owner("Ana", "a@x.io")))
    s = apply_profile(s, CustomerProfile("c1", {"plan": "free"}, T0 + 5, Owner("Old")))
    assert s.profile["owner"]["name"] == "Ana" and s.profile["seg"] == {"plan": "pro"}


def test_seen_ids_are_bounded() -> None:
    s = CustomerState.empty("c1")
    for i in range(30):
        s, _ = apply_survey(s, SurveyResponse(f"e{i}", "c1", "csat", 3, T0 + i * 1000),
                            horizon_start_ms=T0 + 10_000, seen_cap=15)
    assert len(s.seen) == 15 and min(s.seen.values()) >= T0 + 10_000


def test_json_round_trip_and_alert_document() -> None:
    s = CustomerState.empty("c1")
    s = apply_profile(s, CustomerProfile("c1", {"plan": "pro"}, T0, Owner("Ana", "ana@example.com", "@ana")))
    s = apply_interaction(s, Interaction("i1", "c1", T0 + 1, "ticket_opened", "support", "email", "open"))
    s, _ = apply_survey(s, nps("a", 9, 2), horizon_start_ms=0)
    assert CustomerState.from_json(json.loads(json.dumps(s.to_json()))) == s
    r = nps("b", 3, 3, comment="slow", touchpoint="support")
    after, turn = apply_survey(s, r, horizon_start_ms=0)
    assert turn == Turn("detractor", "promoter")
    doc = build_alert(s, r, turn, detected_at_ms=T0 + 5)
    assert not list(ALERT_SCHEMA.iter_errors(doc))
    assert doc["alert_id"] == alert_id("c1", "b") and doc["owner"]["email"] == "ana@example.com"
    assert doc["segment"] == {"plan": "pro"} and doc["recent_interactions"][0]["event_id"] == "i1"
    headers = dict(cloudevent_headers(doc, source="cxstream/test"))
    assert headers["ce_id"] == doc["alert_id"].encode()
    assert headers["ce_type"] == b"com.cxstream.alert.detractor" and headers["ce_specversion"] == b"1.0"


def oracle_turns(arrivals: list[tuple[str, int, int]]) -> list[tuple[str, str]]:
    """After each arrival, recompute the latest of all distinct responses seen so far."""
    out = []
    seen: dict[str, tuple[int, int]] = {}
    prev_latest: str | None = None
    for eid, score, at in arrivals:
        if eid in seen:
            continue
        seen[eid] = (score, at)
        latest = max(seen, key=lambda e: (seen[e][1], e))
        if latest != prev_latest:
            before = category(seen[prev_latest][0]) if prev_latest else None
            now = category(seen[latest][0])
            if now == "detractor" and before != "detractor":
                out.append(("detractor", alert_id("c1", latest)))
            elif before == "detractor" and now != "detractor":
                out.append(("recovered", alert_id("c1", latest)))
        prev_latest = latest
    return out


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 40))
def test_turns_equal_the_oracle(seed: int, n: int) -> None:
    rng = random.Random(seed)
    responses = [(f"e{i}", rng.randrange(11), rng.randrange(8)) for i in range(n)]
    arrivals = [rng.choice(responses) if rng.random() < 0.2 else r for r in responses]
    rng.shuffle(arrivals)
    s = CustomerState.empty("c1")
    got = []
    for eid, score, at in arrivals:
        s, t = apply_survey(s, nps(eid, score, at), horizon_start_ms=0)
        if t is not None:
            got.append((t.kind, alert_id("c1", eid)))
    assert got == oracle_turns(arrivals)
