"""Per-customer state and the turn rules.

A customer's NPS state is their latest NPS response by `occurred_at` (ties: the larger
`event_id` by plain string comparison). A turn happens only when a response becomes that
latest one: to `detractor` from anything else (or from no response yet); from `detractor`
to passive/promoter (`recovered`); to `promoter` from passive or no response yet; to
`passive` from promoter. Older responses arriving late are history, never a turn; a
repeated `event_id` is a no-op.

CSAT and CES keep their latest answer each (by `occurred_at`, then `event_id`, as NPS).
When a deployment asks for them (`rules` given to `apply_survey`), an answer that becomes
the latest of its metric, lies in its program's at-risk range (`programs.Program.at_risk`)
while the metric's previous latest answer did not (or there was none), on a customer who
is not currently a detractor, is an `at_risk` turn. Whether the previous answer was at
risk is judged with its program's definition of today.

The journey (recent interactions) is kept apart from the rest (`Journey`, stored under its
own key, `keys.journey_key`): most events are interactions and need nothing else, and a
response needs the journey only for the alert it may cause. With both in one record, every
event read, decoded, encoded and wrote the whole customer; apart, each event handles only
the part it needs. The journey's entries are arrays, not objects, for the same reason:
they leave the field names out of every stored entry.

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
from typing import Any, Final, Literal, Mapping, TypeAlias

from cxstream.core.model import CustomerProfile, Interaction, Record, SurveyResponse
from cxstream.core.scoring import Category, category

__all__ = [
    "JOURNEY_LEN", "SEEN_CAP", "VERSION", "Category", "CustomerState", "Journey", "JourneyEntry",
    "Turn", "TurnKind", "apply_interaction", "apply_profile", "apply_survey", "category",
    "is_duplicate_survey", "journey_from_json", "journey_to_json", "legacy_journey",
]

#: Layout version of `CustomerState.to_json()` and `journey_to_json()`. 2 added
#: touchpoint/channel/comment/segment to the latest NPS entry; 3 moved the journey out of the
#: customer record into its own entry, its interactions as arrays. Versions 1 and 2 are still
#: read (`legacy_journey` takes their journey, see `cxstream.core.step`).
VERSION = 3
_READABLE = (1, 2, 3)
#: Default bound on remembered survey ids per customer.
SEEN_CAP = 1000
#: Default number of recent interactions kept per customer.
JOURNEY_LEN = 10

TurnKind = Literal["detractor", "recovered", "promoter", "passive", "at_risk"]


class _Keep:
    """The type of `_KEEP`, which marks a field `_with` leaves as it is (a class rather than
    a bare object, so that the compiled core accepts it where an entry is expected)."""

    __slots__ = ()


_KEEP = _Keep()

#: One JSON object of the state (see `CustomerState` for the keys of each kind).
Entry: TypeAlias = dict[str, Any]
#: One kept interaction: ``[event_id, kind, at, touchpoint, channel, outcome]`` (`at`: epoch
#: ms; the last three may be null), read and written as a JSON array.
JourneyEntry: TypeAlias = list[Any]
#: A customer's kept interactions, newest first (by `at`, then event id).
Journey: TypeAlias = tuple[JourneyEntry, ...]
#: Positions in a `JourneyEntry`.
ID: Final = 0
KIND: Final = 1
AT: Final = 2
TOUCHPOINT: Final = 3
CHANNEL: Final = 4
OUTCOME: Final = 5
_ENTRY_LEN: Final = 6


@dataclass(frozen=True, slots=True)
class Turn:
    """A change that must be told downstream: of the latest NPS category, or (`at_risk`)
    of the latest CSAT or CES answer into its program's at-risk range."""

    kind: TurnKind
    # The category of the latest NPS response before this one (None: there was none); for
    # `at_risk`, the customer's NPS category as it stands (never detractor).
    previous_category: Category | None


class CustomerState(Record):
    """What cxstream remembers about one customer besides the journey (`Journey`), kept as
    JSON-ready values because the table stores it as JSON (`to_json` / `from_json`, compact
    keys):

    ``{"v": 3, "id": customer_id,
       "n":  {"id", "score", "cat", "at", "tp", "ch", "cmt", "seg"} | null,  # latest NPS
       "cs": {"id", "score", "at"} | null,                                   # latest CSAT
       "ce": {"id", "score", "at"} | null,                                   # latest CES
       "p":  {"seg": {...}, "owner": {"name", "email", "slack"} | null, "at",
              "value"?: {"tier"?, "arr"?, "currency"?}} | null,
       "s":  {survey event_id: occurred_at, ...}}``

    `at` values are epoch ms. Whether the customer is currently a detractor is derived from
    `n.cat` (`is_detractor`), never stored twice. Versions 1 and 2 also held the journey,
    as ``"j": [{"id", "kind", "at", "tp", "ch", "out"}, ...]`` (`legacy_journey`).

    Size bound per customer: one NPS, one CSAT and one CES entry, one profile and at most
    `seen_cap` (default 1000) survey ids; the journey, at most `journey_len` (default 10)
    interactions. With the decoder's limits (ids ≤ 128 chars, labels ≤ 64, comment ≤ 4000,
    segment ≤ 16 values of ≤ 128) and the defaults that is under 200 KB of JSON for ASCII
    text (under 4× that if every character takes 4 UTF-8 bytes), almost all of it the seen
    ids; a typical customer needs far less.
    """

    __slots__ = ("customer_id", "nps", "csat", "ces", "profile", "seen")

    def __init__(self, customer_id: str, nps: Entry | None = None, csat: Entry | None = None,
                 ces: Entry | None = None, profile: Entry | None = None,
                 seen: dict[str, int] | None = None) -> None:
        # A `Record`, not a dataclass: two are built per response.
        self.customer_id = customer_id
        self.nps = nps
        self.csat = csat
        self.ces = ces
        self.profile = profile
        self.seen: dict[str, int] = {} if seen is None else seen

    def _fields(self) -> tuple[object, ...]:
        return (self.customer_id, self.nps, self.csat, self.ces, self.profile, self.seen)

    @classmethod
    def empty(cls, customer_id: str) -> CustomerState:
        """The state of a customer cxstream has never heard of."""
        return CustomerState(customer_id, None, None, None, None, {})

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
                    "ce": self.ces, "p": self.profile, "s": self.seen}
        return {"v": VERSION, "id": self.customer_id, "n": _clone(self.nps),
                "cs": _clone(self.csat), "ce": _clone(self.ces), "p": _clone(self.profile),
                "s": dict(self.seen)}

    @classmethod
    def from_json(cls, d: Any, *, copy: bool = True) -> CustomerState:
        """Read a stored record; ValueError for an unknown version or a broken layout, so
        a record written by an incompatible release fails loudly instead of being misread.
        The journey of a version 1 or 2 record is checked too, but not read here
        (`legacy_journey`).

        `copy=False` shares the record's entries instead of deep-copying them (same checks):
        only for a caller that mutates neither the record nor the state (module docstring).
        """
        v = d.get("v") if isinstance(d, dict) else None
        if v not in _READABLE:
            raise ValueError(f"customer state version {v!r} is not one of {_READABLE}")
        try:
            if v != VERSION:
                _legacy_entries(d["j"])
            if not copy:
                return cls._shared(d, v)
            nps = _clone(d["n"])
            if nps is not None and v == 1:
                nps = _upgrade_nps(nps)
            return cls(str(d["id"]), nps, _clone(d["cs"]), _clone(d["ce"]), _clone(d["p"]),
                       dict(d["s"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"broken customer state record: {type(exc).__name__}") from exc

    @classmethod
    def _shared(cls, d: dict[str, Any], v: int) -> CustomerState:
        """`from_json(d, copy=False)` of a record of version `v`; raises like `from_json`'s
        copying path on a broken layout (KeyError, TypeError or ValueError)."""
        nps = d["n"]
        if nps is not None and v == 1:
            nps = _upgrade_nps(nps)
        seen = d["s"]
        return CustomerState(str(d["id"]), nps, d["cs"], d["ce"], d["p"],
                             seen if type(seen) is dict else dict(seen))


def journey_to_json(journey: Journey, offset: int) -> dict[str, Any]:
    """The stored journey entry: ``{"v": 3, "j": [entry, ...], "o": offset}``, `o` being
    the offset of the last interaction applied (the crash-safety stamp, see
    `cxstream.core.step`). Shares the entries (never mutated, module docstring)."""
    return {"v": VERSION, "j": list(journey), "o": offset}


def journey_from_json(d: Any) -> tuple[Journey, int]:
    """(journey, stamp) of a stored journey entry, sharing its entries; ValueError for an
    unknown version or a broken layout."""
    v = d.get("v") if isinstance(d, dict) else None
    if v != VERSION:
        raise ValueError(f"journey version {v!r} is not {VERSION}")
    try:
        entries = d["j"]
        offset = d["o"]
        if type(entries) is not list or type(offset) is not int:
            raise TypeError("not a list and an offset")
        for e in entries:
            if type(e) is not list or len(e) != _ENTRY_LEN:
                raise TypeError("an entry is not an array of six")
        return tuple(entries), offset
    except (KeyError, TypeError) as exc:
        raise ValueError(f"broken journey record: {type(exc).__name__}") from exc


def legacy_journey(d: Any) -> Journey | None:
    """The journey a customer record of version 1 or 2 still holds (`d`: its state part), in
    today's layout; None for a record of this version, which holds none. ValueError like
    `CustomerState.from_json`."""
    v = d.get("v") if isinstance(d, dict) else None
    if v not in _READABLE:
        raise ValueError(f"customer state version {v!r} is not one of {_READABLE}")
    if v == VERSION:
        return None
    try:
        return _legacy_entries(d["j"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"broken customer state record: {type(exc).__name__}") from exc


def _legacy_entries(entries: Any) -> Journey:
    """Version 1 and 2 journey objects as today's arrays; raises on anything else."""
    if type(entries) is not list:
        raise TypeError("the journey is not a list")
    return tuple([[e["id"], e["kind"], e["at"], e["tp"], e["ch"], e["out"]]
                  for e in map(dict, entries)])


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
          profile: Entry | None | _Keep = _KEEP,
          seen: dict[str, int] | _Keep = _KEEP) -> CustomerState:
    """`dataclasses.replace` for the state, without its generic (and per event costly)
    field introspection."""
    return CustomerState(
        state.customer_id,
        state.nps if isinstance(nps, _Keep) else nps,
        state.csat if isinstance(csat, _Keep) else csat,
        state.ces if isinstance(ces, _Keep) else ces,
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


def _nps_turn(previous: Category | None, now: Category) -> Turn | None:
    """The turn of a latest NPS category going from `previous` to `now`, if any."""
    if now == previous:
        return None
    if now == "detractor":
        return Turn("detractor", previous)
    if previous == "detractor":
        return Turn("recovered", previous)
    if now == "promoter":
        return Turn("promoter", previous)  # from passive or from no answer
    if previous == "promoter":
        return Turn("passive", previous)
    return None  # a first answer that is passive


def _was_at_risk(entry: Entry | None, metric: str, rules: Mapping[str, Any]) -> bool:
    """Whether the latest answer `entry` of `metric` (csat or ces) lies in its program's
    at-risk range (False without one, or when its program is no longer known)."""
    if entry is None:
        return False
    rule = rules.get(entry.get("p", metric))
    if rule is None or rule[0] != metric:
        return False
    i = entry["score"] - rule[1]
    return 0 <= i < len(rule[7]) and bool(rule[7][i])


def apply_survey(state: CustomerState, response: SurveyResponse, *, horizon_start_ms: int,
                 seen_cap: int = SEEN_CAP, turns: bool = True,
                 rules: Mapping[str, Any] | None = None
                 ) -> tuple[CustomerState, Turn | None]:
    """The state after `response` and the turn it causes, if any.

    `horizon_start_ms` is stream time − horizon: remembered ids older than it are
    forgotten. `turns` False: an NPS answer of a program that does not drive turns
    (`turns = false` in the registry) is only remembered as seen; the customer's NPS state
    is their latest answer of a program that does. `rules` (`cxstream.core.programs.rules`;
    None: no `at_risk` turns) says which CSAT and CES answers are at risk (module
    docstring). The caller passes only non-duplicate, not-too-late responses, but a
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
        if not turns or not _newer(r, state.nps):
            return _with(state, seen=seen), None  # history, never a turn
        now = category(r.score)
        turn = _nps_turn(state.nps_category, now)
        latest = {"id": r.event_id, "score": r.score, "cat": now, "at": r.occurred_at,
                  "tp": r.touchpoint, "ch": r.channel, "cmt": r.comment, "seg": dict(r.segment)}
        if r.program != r.survey:  # the built-ins' entries keep their earlier layout
            latest["p"] = r.program
        return _with(state, nps=latest, seen=seen), turn
    before = state.csat if r.survey == "csat" else state.ces
    if not _newer(r, before):
        return _with(state, seen=seen), None  # history, never a turn
    entry: dict[str, Any] = {"id": r.event_id, "score": r.score, "at": r.occurred_at}
    if r.program != r.survey:
        entry["p"] = r.program
    turn = None
    if rules is not None and not state.is_detractor:
        rule = rules.get(r.program)
        if (rule is not None and rule[7][r.score - rule[1]]
                and not _was_at_risk(before, r.survey, rules)):
            turn = Turn("at_risk", state.nps_category)
    if r.survey == "csat":
        return _with(state, csat=entry, seen=seen), turn
    return _with(state, ces=entry, seen=seen), turn


def apply_interaction(journey: Journey, interaction: Interaction, *,
                      journey_len: int = JOURNEY_LEN) -> Journey:
    """Keep the `journey_len` newest interactions (by occurred_at, then event_id), newest
    first. A kept event_id is a no-op (`journey` itself is returned); so is one older than
    all kept ones when the journey is full (so a re-delivery of a dropped one is dropped
    again).

    The new entry is inserted in place rather than the list re-sorted: the kept journey is
    always newest first, as only this function builds it."""
    if journey_len < 0:
        raise ValueError("journey_len must not be negative")
    i = interaction
    new_key = (i.occurred_at, i.event_id)
    # Where the entry goes: before the first older one (the journey is newest first).
    position = len(journey)
    for n, e in enumerate(journey):
        if e[ID] == i.event_id:
            return journey
        if position > n and (e[AT], e[ID]) < new_key:
            position = n
    if len(journey) == journey_len and (
            journey_len == 0 or new_key < (journey[-1][AT], journey[-1][ID])):
        return journey  # full, and older than every kept one
    entry: JourneyEntry = [i.event_id, i.kind, i.occurred_at, i.touchpoint, i.channel, i.outcome]
    return (*journey[:position], entry, *journey[position:])[:journey_len]


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
    entry: Entry = {"seg": dict(p.segment), "owner": owner, "at": p.updated_at}
    if p.value is not None:  # only then: a profile without value keeps its layout
        entry["value"] = dict(p.value)
    return _with(state, profile=entry)
