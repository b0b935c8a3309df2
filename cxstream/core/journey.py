"""Per-customer state and the "turns detractor" rule.

A customer's NPS state is their latest NPS response by `occurred_at` (ties: the larger
`event_id` by plain string comparison). A turn happens only when a response becomes that
latest one: to `detractor` from anything else (or from no response yet), or from
`detractor` to passive/promoter (`recovered`). Older responses arriving late are history,
never a turn; a repeated `event_id` is a no-op. CSAT and CES only keep their latest value.

Why pure and copy-on-write: the agent must keep the *old* customer record until the broker
has acknowledged the alert (a crash in between replays the response against the old record
and re-emits the same alert id). So no function here mutates its input; a returned state
shares unchanged parts with the old one, and neither may ever be mutated in place.

The same holds one level out, for the stored records: `cxstream.core.step` reads them with
`from_json(..., copy=False)` and writes `to_json(copy=False)`, so a new record shares its
entries (and the seen ids) with the record it replaces, instead of deep-copying them for
every event. That is safe because nothing mutates a stored record or a state in place: the
only readers of customer records are `step` and `batch` in this package (the agent and the
query code pass them along or never look at them), and every change here builds new
dicts and tuples. The deep-copying defaults stay for any other caller.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from cxstream.core.model import CustomerProfile, Interaction, Record, SurveyResponse
from cxstream.core.scoring import Category, category

__all__ = [
    "JOURNEY_LEN", "SEEN_CAP", "VERSION", "Category", "CustomerState", "Turn", "TurnKind",
    "apply_interaction", "apply_profile", "apply_survey", "category", "is_duplicate_survey",
]

#: Layout version of `CustomerState.to_json()`. 2 added touchpoint/channel/comment/segment
#: to the latest NPS entry; version 1 records are still read (those fields become empty).
VERSION = 2
_READABLE = (1, 2)
#: Default bound on remembered survey ids per customer.
SEEN_CAP = 1000
#: Default number of recent interactions kept per customer.
JOURNEY_LEN = 10

TurnKind = Literal["detractor", "recovered"]


class _Keep:
    """The type of `_KEEP`, which marks a field `_with` leaves as it is (a class rather than
    a bare object, so that the compiled core accepts it where an entry is expected)."""

    __slots__ = ()


_KEEP = _Keep()

#: One JSON object of the state (see `CustomerState` for the keys of each kind).
Entry: TypeAlias = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Turn:
    """A change of the latest NPS category that must be told downstream."""

    kind: TurnKind
    previous_category: Category | None  # None: the customer had no NPS response before


class CustomerState(Record):
    """Everything cxstream remembers about one customer, kept as JSON-ready values because
    the Faust table stores it as JSON (`to_json` / `from_json`, compact keys):

    ``{"v": 2, "id": customer_id,
       "n":  {"id", "score", "cat", "at", "tp", "ch", "cmt", "seg"} | null,  # latest NPS
       "cs": {"id", "score", "at"} | null,                                   # latest CSAT
       "ce": {"id", "score", "at"} | null,                                   # latest CES
       "j":  [{"id", "kind", "at", "tp", "ch", "out"}, ...],  # newest first
       "p":  {"seg": {...}, "owner": {"name", "email", "slack"} | null, "at"} | null,
       "s":  {survey event_id: occurred_at, ...}}``

    `at` values are epoch ms. Whether the customer is currently a detractor is derived from
    `n.cat` (`is_detractor`), never stored twice.

    Size bound per customer: one NPS, one CSAT and one CES entry, one profile, at most
    `journey_len` (default 10) interactions and at most `seen_cap` (default 1000) survey
    ids. With the decoder's limits (ids ≤ 128 chars, labels ≤ 64, comment ≤ 4000,
    segment ≤ 16 values of ≤ 128) and the defaults that is under 200 KB of JSON for ASCII
    text (under 4× that if every character takes 4 UTF-8 bytes), almost all of it the seen
    ids; a typical customer needs well under 2 KB.
    """

    __slots__ = ("customer_id", "nps", "csat", "ces", "journey", "profile", "seen")

    def __init__(self, customer_id: str, nps: Entry | None = None, csat: Entry | None = None,
                 ces: Entry | None = None, journey: tuple[Entry, ...] = (),
                 profile: Entry | None = None, seen: dict[str, int] | None = None) -> None:
        # A `Record`, not a dataclass: two are built per event.
        self.customer_id = customer_id
        self.nps = nps
        self.csat = csat
        self.ces = ces
        self.journey = journey
        self.profile = profile
        self.seen: dict[str, int] = {} if seen is None else seen

    def _fields(self) -> tuple[object, ...]:
        return (self.customer_id, self.nps, self.csat, self.ces, self.journey, self.profile,
                self.seen)

    @classmethod
    def empty(cls, customer_id: str) -> CustomerState:
        """The state of a customer cxstream has never heard of."""
        return CustomerState(customer_id, None, None, None, (), None, {})

    @property
    def is_detractor(self) -> bool:
        """Whether the latest NPS response is a detractor (0–6)."""
        return self.nps is not None and self.nps["cat"] == "detractor"

    @property
    def nps_category(self) -> Category | None:
        """Category of the latest NPS response, None before the first one."""
        return None if self.nps is None else self.nps["cat"]

    def to_json(self, *, copy: bool = True) -> dict[str, Any]:
        """A JSON-ready deep copy, so whatever the caller does with it (the table keeps it
        in memory) cannot change this state.

        `copy=False` shares the entries and the seen ids with this state instead (same
        layout): for a caller that, like `step`, never mutates either (module docstring).
        """
        if not copy:
            return {"v": VERSION, "id": self.customer_id, "n": self.nps, "cs": self.csat,
                    "ce": self.ces, "j": list(self.journey), "p": self.profile, "s": self.seen}
        return {"v": VERSION, "id": self.customer_id, "n": _clone(self.nps),
                "cs": _clone(self.csat), "ce": _clone(self.ces),
                "j": [_clone(e) for e in self.journey], "p": _clone(self.profile),
                "s": dict(self.seen)}

    @classmethod
    def from_json(cls, d: Any, *, copy: bool = True) -> CustomerState:
        """Read a stored record; ValueError for an unknown version or a broken layout, so
        a record written by an incompatible release fails loudly instead of being misread.

        `copy=False` shares the record's entries instead of deep-copying them (same checks):
        only for a caller that mutates neither the record nor the state (module docstring).
        """
        v = d.get("v") if isinstance(d, dict) else None
        if v not in _READABLE:
            raise ValueError(f"customer state version {v!r} is not one of {_READABLE}")
        try:
            if not copy:
                return cls._shared(d, v)
            nps = _clone(d["n"])
            if nps is not None and v == 1:
                nps = _upgrade_nps(nps)
            return cls(str(d["id"]), nps, _clone(d["cs"]), _clone(d["ce"]),
                       tuple(_clone(dict(e)) for e in d["j"]), _clone(d["p"]), dict(d["s"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"broken customer state record: {type(exc).__name__}") from exc

    @classmethod
    def _shared(cls, d: dict[str, Any], v: int) -> CustomerState:
        """`from_json(d, copy=False)` of a record of version `v`; raises like `from_json`'s
        copying path on a broken layout (KeyError, TypeError or ValueError)."""
        nps = d["n"]
        if nps is not None and v == 1:
            nps = _upgrade_nps(nps)
        journey = tuple(d["j"])
        for e in journey:
            if type(e) is not dict:  # never stored so, but read it like the copying path
                journey = tuple(_clone(dict(e)) for e in journey)
                break
        seen = d["s"]
        return CustomerState(str(d["id"]), nps, d["cs"], d["ce"], journey, d["p"],
                             seen if type(seen) is dict else dict(seen))


def _upgrade_nps(nps: Entry) -> Entry:
    """A version 1 latest-NPS entry in the version 2 layout (the new fields empty)."""
    return {**nps, "tp": None, "ch": None, "cmt": None, "seg": {}}


def _clone(value: Any) -> Any:
    """Deep copy of JSON data (dicts, lists; everything else is immutable)."""
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clone(v) for v in value]
    return value


def _with(state: CustomerState, *, nps: Entry | None | _Keep = _KEEP,
          csat: Entry | None | _Keep = _KEEP, ces: Entry | None | _Keep = _KEEP,
          journey: tuple[Entry, ...] | _Keep = _KEEP, profile: Entry | None | _Keep = _KEEP,
          seen: dict[str, int] | _Keep = _KEEP) -> CustomerState:
    """`dataclasses.replace` for the state, without its generic (and per event costly)
    field introspection."""
    return CustomerState(
        state.customer_id,
        state.nps if isinstance(nps, _Keep) else nps,
        state.csat if isinstance(csat, _Keep) else csat,
        state.ces if isinstance(ces, _Keep) else ces,
        state.journey if isinstance(journey, _Keep) else journey,
        state.profile if isinstance(profile, _Keep) else profile,
        state.seen if isinstance(seen, _Keep) else seen,
    )


def is_duplicate_survey(state: CustomerState, event_id: str) -> bool:
    """Whether this survey event_id was already applied (within the dedupe memory)."""
    return event_id in state.seen


def _check_customer(state: CustomerState, customer_id: str) -> None:
    if customer_id != state.customer_id:
        raise ValueError("event belongs to another customer than this state")


def _newer(r: SurveyResponse, entry: Entry | None) -> bool:
    """Strictly later by (occurred_at, event_id): equal means the same response."""
    return entry is None or (r.occurred_at, r.event_id) > (entry["at"], entry["id"])


def _remember(seen: dict[str, int], r: SurveyResponse, horizon_start_ms: int,
              cap: int) -> dict[str, int]:
    """The ids to remember after `r`: those not older than the horizon (a duplicate of an
    older one is dead-lettered as too late by the caller before it gets here), at most
    `cap` of them, the oldest (by occurred_at, then id) dropped first.

    Usually none has aged out, and the copy is then made in C: with 30 d windows a customer
    remembers many ids, and filtering them in Python on every response made long windows
    cost more per response than short ones."""
    if seen and min(seen.values()) < horizon_start_ms:
        kept = {eid: at for eid, at in seen.items() if at >= horizon_start_ms}
    else:
        kept = dict(seen)
    if r.occurred_at >= horizon_start_ms:
        kept[r.event_id] = r.occurred_at
    excess = len(kept) - cap
    if excess > 0:
        for eid in heapq.nsmallest(excess, kept, key=lambda e: (kept[e], e)):
            del kept[eid]
    return kept


def apply_survey(state: CustomerState, response: SurveyResponse, *, horizon_start_ms: int,
                 seen_cap: int = SEEN_CAP) -> tuple[CustomerState, Turn | None]:
    """The state after `response` and the turn it causes, if any.

    `horizon_start_ms` is stream time − horizon: remembered ids older than it are
    forgotten. The caller passes only non-duplicate, not-too-late responses, but a
    duplicate still returns `state` itself and no turn. `state` is never modified: keep it
    until the alert for the turn is acknowledged, then store the returned one.
    """
    _check_customer(state, response.customer_id)
    if response.survey not in ("nps", "csat", "ces"):
        raise ValueError(f"unknown survey kind {response.survey!r}")
    if seen_cap < 1:
        raise ValueError("seen_cap must be at least 1")
    if is_duplicate_survey(state, response.event_id):
        return state, None
    seen = _remember(state.seen, response, horizon_start_ms, seen_cap)
    r = response
    if r.survey == "nps":
        if not _newer(r, state.nps):
            return _with(state, seen=seen), None  # history, never a turn
        previous = state.nps_category
        now = category(r.score)
        turn = None
        if now == "detractor" and previous != "detractor":
            turn = Turn("detractor", previous)
        elif previous == "detractor" and now != "detractor":
            turn = Turn("recovered", previous)
        latest = {"id": r.event_id, "score": r.score, "cat": now, "at": r.occurred_at,
                  "tp": r.touchpoint, "ch": r.channel, "cmt": r.comment, "seg": dict(r.segment)}
        return _with(state, nps=latest, seen=seen), turn
    entry = {"id": r.event_id, "score": r.score, "at": r.occurred_at}
    if r.survey == "csat":
        return _with(state, csat=entry if _newer(r, state.csat) else state.csat, seen=seen), None
    return _with(state, ces=entry if _newer(r, state.ces) else state.ces, seen=seen), None


def apply_interaction(state: CustomerState, interaction: Interaction, *,
                      journey_len: int = JOURNEY_LEN) -> CustomerState:
    """Keep the `journey_len` newest interactions (by occurred_at, then event_id), newest
    first. A kept event_id is a no-op; one older than all kept ones when the list is full
    is dropped (so a re-delivery of a dropped one is dropped again).

    The new entry is inserted in place rather than the list re-sorted: the kept journey is
    always newest first, as only this function builds it."""
    _check_customer(state, interaction.customer_id)
    if journey_len < 0:
        raise ValueError("journey_len must not be negative")
    i = interaction
    journey = state.journey
    new_key = (i.occurred_at, i.event_id)
    # Where the entry goes: before the first older one (the journey is newest first).
    position = len(journey)
    for n, e in enumerate(journey):
        if e["id"] == i.event_id:
            return state
        if position > n and (e["at"], e["id"]) < new_key:
            position = n
    if len(journey) == journey_len and (
            journey_len == 0 or new_key < (journey[-1]["at"], journey[-1]["id"])):
        return state  # full, and older than every kept one
    entry = {"id": i.event_id, "kind": i.kind, "at": i.occurred_at, "tp": i.touchpoint,
             "ch": i.channel, "out": i.outcome}
    return _with(state, journey=(*journey[:position], entry, *journey[position:])[:journey_len])


def apply_profile(state: CustomerState, profile: CustomerProfile) -> CustomerState:
    """Keep the latest profile by updated_at; on a tie the later message wins (the
    compacted topic's order is the CRM's order)."""
    _check_customer(state, profile.customer_id)
    p = profile
    if state.profile is not None and p.updated_at < state.profile["at"]:
        return state
    owner = None
    if p.owner is not None:
        owner = {"name": p.owner.name, "email": p.owner.email, "slack": p.owner.slack}
    return _with(state, profile={"seg": dict(p.segment), "owner": owner, "at": p.updated_at})
