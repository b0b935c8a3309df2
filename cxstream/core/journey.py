"""Per-customer state and the "turns detractor" rule.

A customer's NPS state is their latest NPS response by `occurred_at` (ties: larger
`event_id`). An alert fires when that latest response changes the category to detractor
from anything else (or from nothing), and a `recovered` event when it changes from detractor
to passive or promoter. Older responses arriving late are history, never a turn; a repeated
`event_id` is a no-op.

Size per customer is bounded: one latest NPS/CSAT/CES entry each, at most `journey_len`
interactions, one profile, and at most `seen_cap` remembered survey ids (ids older than
stream time − horizon are forgotten: such responses are dead-lettered as too late anyway).
Functions return new states and never mutate their input, so the caller can keep the old
state until the broker has acknowledged the alert.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from cxstream.core.model import CustomerProfile, Interaction, SurveyResponse
from cxstream.core.scoring import Category, category

VERSION = 1
SEEN_CAP = 1000
TurnKind = Literal["detractor", "recovered"]


@dataclass(frozen=True, slots=True)
class Turn:
    kind: TurnKind
    previous_category: Category | None


@dataclass(frozen=True, slots=True)
class CustomerState:
    customer_id: str
    nps: dict[str, Any] | None = None  # {"id", "score", "cat", "at"} of the latest NPS response
    csat: dict[str, Any] | None = None  # {"id", "score", "at"}
    ces: dict[str, Any] | None = None
    journey: tuple[dict[str, Any], ...] = ()  # newest first: {"id", "kind", "at", "tp", "ch", "out"}
    profile: dict[str, Any] | None = None  # {"seg", "owner", "at"}
    seen: dict[str, int] = field(default_factory=dict)  # survey event_id -> occurred_at

    @classmethod
    def empty(cls, customer_id: str) -> "CustomerState":
        return cls(customer_id)

    @property
    def is_detractor(self) -> bool:
        return self.nps is not None and self.nps["cat"] == "detractor"

    def to_json(self) -> dict[str, Any]:
        return {"v": VERSION, "id": self.customer_id, "n": self.nps, "cs": self.csat,
                "ce": self.ces, "j": list(self.journey), "p": self.profile, "s": self.seen}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "CustomerState":
        if d.get("v") != VERSION:
            raise ValueError(f"customer state version {d.get('v')!r} is not {VERSION}")
        return cls(d["id"], d["n"], d["cs"], d["ce"], tuple(d["j"]), d["p"], dict(d["s"]))


def is_duplicate_survey(state: CustomerState, event_id: str) -> bool:
    return event_id in state.seen


def _newer(r: SurveyResponse, entry: dict[str, Any] | None) -> bool:
    return entry is None or (r.occurred_at, r.event_id) > (entry["at"], entry["id"])


PRUNE_AT = 32


def _remember(seen: dict[str, int], r: SurveyResponse, horizon_start_ms: int, cap: int) -> dict[str, int]:
    """Add the id; past PRUNE_AT ids, forget those older than the horizon (a duplicate of
    one of them is too late anyway, so keeping them a little longer changes no decision)."""
    kept = dict(seen)
    kept[r.event_id] = r.occurred_at
    if len(kept) > PRUNE_AT:
        kept = {eid: at for eid, at in kept.items() if at >= horizon_start_ms}
    if len(kept) > cap:
        kept = dict(sorted(kept.items(), key=lambda item: (item[1], item[0]))[-cap:])
    return kept


def apply_survey(state: CustomerState, r: SurveyResponse, *, horizon_start_ms: int,
                 seen_cap: int = SEEN_CAP) -> tuple[CustomerState, Turn | None]:
    """The state after response `r`, and the turn it causes, if any."""
    if r.event_id in state.seen:
        return state, None
    seen = _remember(state.seen, r, horizon_start_ms, seen_cap)
    if r.survey == "nps":
        if not _newer(r, state.nps):
            return replace(state, seen=seen), None
        previous: Category | None = state.nps["cat"] if state.nps else None
        now = category(r.score)
        turn = None
        if now == "detractor" and previous != "detractor":
            turn = Turn("detractor", previous)
        elif previous == "detractor" and now != "detractor":
            turn = Turn("recovered", previous)
        latest = {"id": r.event_id, "score": r.score, "cat": now, "at": r.occurred_at}
        return replace(state, nps=latest, seen=seen), turn
    entry = {"id": r.event_id, "score": r.score, "at": r.occurred_at}
    if r.survey == "csat":
        return replace(state, csat=entry if _newer(r, state.csat) else state.csat, seen=seen), None
    return replace(state, ces=entry if _newer(r, state.ces) else state.ces, seen=seen), None


def apply_interaction(state: CustomerState, i: Interaction, *, journey_len: int = 10) -> CustomerState:
    """Keep the `journey_len` newest interactions (by occurred_at, then event_id)."""
    if any(e["id"] == i.event_id for e in state.journey):
        return state
    entry = {"id": i.event_id, "kind": i.kind, "at": i.occurred_at, "tp": i.touchpoint,
             "ch": i.channel, "out": i.outcome}
    journey = sorted((*state.journey, entry), key=lambda e: (e["at"], e["id"]), reverse=True)
    return replace(state, journey=tuple(journey[:journey_len]))


def apply_profile(state: CustomerState, p: CustomerProfile) -> CustomerState:
    """Keep the latest profile by updated_at (a tie: the later message wins)."""
    if state.profile is not None and p.updated_at < state.profile["at"]:
        return state
    owner = None
    if p.owner is not None:
        owner = {"name": p.owner.name, "email": p.owner.email, "slack": p.owner.slack}
    return replace(state, profile={"seg": dict(p.segment), "owner": owner, "at": p.updated_at})
