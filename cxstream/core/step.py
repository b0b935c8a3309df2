"""What one input message does to the state: a pure plan that the agent then carries out.

Why a plan: the order of effects is what makes cxstream crash-safe, and keeping it here,
away from Faust, lets tests replay any crash point without a broker.

Guarantees, by construction:

* **No double counting.** Every state entry written for an input message carries that
  message's offset (buckets and journeys: `o`; customers: `h[topic]`). A message whose
  offset is at or below an entry's stamp has already been applied to that entry and is
  skipped for it. All entries of one partition share one ordered changelog partition, so a
  crash loses a suffix of writes, never a middle: stamps are exact after recovery.
* **No lost alert.** The plan's `before_alert` writes (buckets) may land before the alert;
  the customer record that remembers the turn is in `after_alert`, which the agent writes
  only once the broker acknowledged the alert. A crash in between re-emits the same
  `alert_id` on replay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from cxstream.core import keys
from cxstream.core.alert import build_alert
from cxstream.core.decode import decode_interaction, decode_profile, decode_survey
from cxstream.core.errors import ErrorCode, Rejection
from cxstream.core.journey import (
    VERSION,
    CustomerState,
    Journey,
    apply_interaction,
    apply_profile,
    apply_survey,
    is_duplicate_survey,
    journey_from_json,
    journey_to_json,
    legacy_journey,
)
from cxstream.core.model import Record, SurveyResponse
from cxstream.core.buckets import add_response
from cxstream.core.scoring import category, increment, plus
from cxstream.core.scoring import zero as zero_counts
from cxstream.core.segments import dimension_values, segment_keys
from cxstream.core.windows import HOUR, MINUTE, RESOLUTIONS, bucket_keys_for, is_too_late

Outcome = Literal["accepted", "duplicate", "deadlettered", "too_late", "replayed"]
Kind = Literal["surveys", "interactions", "customers"]

#: Short name of the offset stamp of interactions in a customer record of version 1 or 2
#: (responses stamp "s", profiles "c"; interactions now stamp the journey's entry).
_LEGACY_STAMP = "i"
#: Recent bucket keys (see `_bucket_keys`): all of them per (partition, minute), the coarser
#: ones per (partition, hour); each emptied when full.
_KEYS: dict[tuple[int, int], tuple[str, ...]] = {}
_COARSE: dict[tuple[int, int], tuple[str, ...]] = {}
_KEYS_MAX = 4096
# `_bucket_keys` takes the finest bucket to be the minute and the others to be a function of
# the hour.
assert RESOLUTIONS[0] == MINUTE and all(res % HOUR == 0 for res in RESOLUTIONS[1:])


class StateView(Protocol):
    """Read access to the state table (a Faust table, or a dict in tests)."""

    def get(self, key: str, default: Any = None) -> Any: ...


@dataclass(frozen=True, slots=True)
class StepConfig:
    horizon_ms: int
    dimensions: frozenset[str] | None = None
    value_cap: int = 50
    journey_length: int = 10


class Plan(Record):
    """Effects of one message, in the order they must be carried out. (A `Record`, not a
    dataclass: one is built per message, and a dataclass's `__init__` stays interpreted
    under mypyc, so this class writes its own, which is compiled.)"""

    __slots__ = ("outcome", "rejection", "before_alert", "alert", "after_alert", "stream_time",
                 "survey", "category", "folded")

    def __init__(self, outcome: Outcome, rejection: Rejection | None = None, *,
                 survey: str | None = None,
                 after_alert: list[tuple[str, Any]] | None = None) -> None:
        self.outcome: Outcome = outcome
        self.rejection: Rejection | None = rejection
        self.before_alert: list[tuple[str, Any]] = []
        self.alert: dict[str, Any] | None = None
        self.after_alert: list[tuple[str, Any]] = [] if after_alert is None else after_alert
        #: New stream time of the partition when this message advanced it (for expiry).
        self.stream_time: int | None = None
        self.survey: str | None = survey
        self.category: str | None = None
        self.folded: tuple[str, ...] = ()

    def _fields(self) -> tuple[object, ...]:
        return (self.outcome, self.rejection, self.before_alert, self.alert, self.after_alert,
                self.stream_time, self.survey, self.category, self.folded)


def _customer(view: StateView, ckey: str
              ) -> tuple[CustomerState | None, dict[str, int], Journey | None]:
    """The state and offset stamps stored under customer key `ckey`, and the journey the
    record still holds if it is of an earlier layout (else None). The state shares the
    stored record's entries (no deep copy per event): neither is ever mutated in place, see
    `cxstream.core.journey`; the stamps are a copy, as the caller updates them."""
    rec = view.get(ckey)
    if rec is None:
        return None, {}, None
    doc = rec["s"]
    state = CustomerState.from_json(doc, copy=False)
    return state, dict(rec["h"]), None if doc["v"] == VERSION else legacy_journey(doc)


def _journey(view: StateView, customer_id: str,
             known: tuple[Journey | None, dict[str, int]] | None = None) -> tuple[Journey, int]:
    """The customer's journey and the offset of the last interaction applied to it (-1:
    none). A customer whose record is of an earlier layout has it there until it moves to
    its own entry (`_customer_writes`, or the customer's next interaction). `known`: the
    legacy journey and stamps `_customer` gave, when the caller has read the record already
    (it is then not read again)."""
    rec = view.get(keys.journey_key(customer_id))
    if rec is not None:
        return journey_from_json(rec)
    if known is None:
        old = view.get(keys.customer_key(customer_id))
        if old is None:
            return (), -1
        known = legacy_journey(old["s"]), old["h"]
    legacy, stamps = known
    return ((), -1) if legacy is None else (legacy, stamps.get(_LEGACY_STAMP, -1))


def _customer_writes(view: StateView, ckey: str, state: CustomerState,
                     stamps: dict[str, int], legacy: Journey | None) -> list[tuple[str, Any]]:
    """The new customer record, which shares unchanged entries with the old one (never
    mutated either). A record of an earlier layout (`legacy`: its journey) is rewritten
    without the journey, so the journey moves to its own entry first, unless it has one."""
    writes: list[tuple[str, Any]] = []
    if legacy is not None:
        jkey = keys.journey_key(state.customer_id)
        stamp = stamps.pop(_LEGACY_STAMP, -1)
        if (legacy or stamp >= 0) and view.get(jkey) is None:
            writes.append((jkey, journey_to_json(legacy, stamp)))
    writes.append((ckey, {"s": state.to_json(copy=False), "h": stamps}))
    return writes


def plan(
    kind: Kind,
    view: StateView,
    cfg: StepConfig,
    *,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    now_ms: int,
) -> Plan:
    """Decide what the message at (topic `kind`, `partition`, `offset`) does to the state.

    `view` is read, never written: it must show the state as left by every earlier message
    of the partition (the worker passes the batch's pending writes over its store). `key`
    and `value` are the record's raw bytes (None: absent); `now_ms` is the processing time,
    used only for the decoder's future-timestamp rule and the alert's `detected_at`.

    Returns the `Plan`, whose `outcome` is one of:

    * ``deadlettered`` (the message does not decode) or ``too_late`` (a response older than
      stream time minus `cfg.horizon_ms`): `rejection` says why; nothing to write.
    * ``replayed``: the entry the message changes already carries its offset (applied
      before a crash); nothing to write but, for a response, the stream time again if it was
      lost (idempotent: a max).
    * ``duplicate``: a survey `event_id` the customer already has: `after_alert` holds the
      customer record with its stamp moved on (after the journey it may move, as below)
      and the stream time, when it advances.
    * ``accepted``: `before_alert` holds the response's caps, then its buckets; `alert` the
      alert of a turn, if any; `after_alert` the journey moved out of a record of an earlier
      layout, the customer record (or, for an interaction, only its journey entry) and last
      the stream time.

    Raises ValueError (or another exception) when a stored entry is broken or of an unknown
    layout; the caller dead-letters that message as a processing error.

    Guarantee: carrying the writes out in the order given (`before_alert`, the broker's
    acknowledgement of `alert`, `after_alert`), behind the writes of the partition's earlier
    messages, keeps every prefix of the changelog a state that replaying the partition
    from its committed offset repairs exactly: each entry is stamped with the offset it
    applied, so a replayed message is skipped where it already landed and applied where it
    did not (module docstring). Deterministic in `view`, `cfg` and the arguments (its
    caches change nothing it returns)."""
    raw = value if value is not None else b""
    if kind == "surveys":
        return _survey(view, cfg, partition, offset, key, raw, now_ms)
    if kind == "interactions":  # called directly: through a variable, a compiled call is slow
        interaction = decode_interaction(raw, key, now_ms)
        if isinstance(interaction, Rejection):
            return Plan("deadlettered", rejection=interaction)
        journey, stamp = _journey(view, interaction.customer_id)
        if stamp >= offset:
            return Plan("replayed")
        journey = apply_interaction(journey, interaction, journey_len=cfg.journey_length)
        # Written even when unchanged (a repeated event id): the stamp moves on.
        return Plan("accepted", after_alert=[(keys.journey_key(interaction.customer_id),
                                              journey_to_json(journey, offset))])
    profile = decode_profile(raw, key, now_ms)
    if isinstance(profile, Rejection):
        return Plan("deadlettered", rejection=profile)
    ckey = keys.customer_key(profile.customer_id)
    state, stamps, legacy = _customer(view, ckey)
    if stamps.get("c", -1) >= offset:
        return Plan("replayed")
    state = state if state is not None else CustomerState.empty(profile.customer_id)
    stamps["c"] = offset
    return Plan("accepted", after_alert=_customer_writes(view, ckey, apply_profile(state, profile),
                                                         stamps, legacy))


def _survey(
    view: StateView, cfg: StepConfig, partition: int, offset: int,
    key: bytes | None, raw: bytes, now_ms: int,
) -> Plan:
    r = decode_survey(raw, key, now_ms)
    if isinstance(r, Rejection):
        return Plan("deadlettered", rejection=r)
    ckey = keys.customer_key(r.customer_id)
    state, stamps, legacy = _customer(view, ckey)
    st_rec = view.get(keys.stream_time_key(partition))
    stream_time = st_rec["t"] if st_rec is not None else None
    if stamps.get("s", -1) >= offset:
        # Applied before a crash; only the stream time may have been lost with it (it is
        # written last), and taking the max again is idempotent.
        out = Plan("replayed")
        _advance(out, partition, stream_time, r.occurred_at if stream_time is None
                 else max(stream_time, r.occurred_at))
        return out
    if stream_time is not None and is_too_late(r.occurred_at, stream_time, cfg.horizon_ms):
        return Plan("too_late", rejection=Rejection(
            ErrorCode.TOO_LATE,
            f"occurred_at is older than stream time minus {cfg.horizon_ms // 60_000} min "
            "(largest window + grace); it can no longer change any window"))
    state = state if state is not None else CustomerState.empty(r.customer_id)
    new_st = r.occurred_at if stream_time is None else max(stream_time, r.occurred_at)
    if is_duplicate_survey(state, r.event_id):
        # Stamp the offset even though nothing else changes: on a replay after a crash the
        # stream time may have moved on, and this message must not turn into a dead letter.
        stamps["s"] = offset
        out = Plan("duplicate", survey=r.survey,
                   after_alert=_customer_writes(view, ckey, state, stamps, legacy))
        _advance(out, partition, stream_time, new_st)
        return out

    out = Plan("accepted", survey=r.survey)
    # The stored caps are sorted lists of distinct values: membership and size are all
    # segment_keys needs, so they are used as they are rather than copied into sets.
    admitted = {dim: view.get(keys.cap_key(partition, dim)) or ()
                for dim in dimension_values(r)
                if cfg.dimensions is None or dim in cfg.dimensions}
    seg = segment_keys(r, dimensions=cfg.dimensions, admitted=admitted, cap=cfg.value_cap)
    out.folded = seg.folded
    new_caps: dict[str, set[str]] = {}
    for dim, value in seg.admit:
        new_caps.setdefault(dim, set(admitted.get(dim, ()))).add(value)
    for dim, values in new_caps.items():
        out.before_alert.append((keys.cap_key(partition, dim), sorted(values)))
    _add_to_buckets(out.before_alert, view, partition, offset, r, seg.keys)

    new_state, turn = apply_survey(state, r, horizon_start_ms=new_st - cfg.horizon_ms)
    if turn is not None:
        journey, _ = _journey(view, r.customer_id, (legacy, stamps))
        out.alert = build_alert(state, r, turn, journey=journey, detected_at_ms=now_ms)
    stamps["s"] = offset
    out.after_alert.extend(_customer_writes(view, ckey, new_state, stamps, legacy))
    _advance(out, partition, stream_time, new_st)
    if r.survey == "nps":
        out.category = category(r.score)
    return out



def _add_to_buckets(writes: list[tuple[str, Any]], view: StateView, partition: int,
                    offset: int, r: SurveyResponse, segments: tuple[str, ...]) -> None:
    """Append the bucket writes of response `r` (at `offset`): its minute, hour and day
    entries, each with the response added in every segment (`buckets.add_response`),
    skipping those that already hold it. The score is validated and turned into its counter
    increments once."""
    inc = increment(r.survey, r.score)
    fresh = plus(zero_counts(), inc)
    get = view.get
    for bkey in _bucket_keys(partition, r.occurred_at):
        new = add_response(get(bkey), offset, segments, inc, fresh)
        if new is not None:
            writes.append((bkey, new))


def _bucket_keys(partition: int, occurred_at: int) -> tuple[str, ...]:
    """`keys.bucket_key` of the buckets at `occurred_at`, finest first; remembered per
    (partition, minute), which all of them are a function of, and the coarser ones per
    (partition, hour): a backlog spread over days has few events per minute, and building
    the three keys cost more than the rest of the bucket updates."""
    minute = occurred_at - occurred_at % MINUTE
    found = _KEYS.get((partition, minute))
    if found is None:
        hour = minute - minute % HOUR
        coarse = _COARSE.get((partition, hour))
        if coarse is None:
            if len(_COARSE) >= _KEYS_MAX:
                _COARSE.clear()
            coarse = _COARSE[partition, hour] = tuple([
                keys.bucket_key(partition, res, start)
                for res, start in bucket_keys_for(occurred_at)[1:]])
        if len(_KEYS) >= _KEYS_MAX:
            _KEYS.clear()
        found = _KEYS[partition, minute] = (keys.bucket_key(partition, MINUTE, minute), *coarse)
    return found


def _advance(out: Plan, partition: int, old: int | None, new: int) -> None:
    """Stream time = the highest occurred_at of any valid, not-too-late response (written
    last, after everything else the message changes)."""
    if new != old:
        out.after_alert.append((keys.stream_time_key(partition), {"t": new}))
        out.stream_time = new
