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

from dataclasses import dataclass, field, replace
from typing import Any, Literal, Mapping, Protocol

import orjson

from cxstream.core import keys
from cxstream.core.alert import build_alert
from cxstream.core.decode import (
    DEFAULT_MIN_EVENT_MS,
    Scales,
    decode_interaction,
    decode_profile,
    decode_survey,
)
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
from cxstream.core.programs import BUILTIN_RULES, Registry, Rule, rules, scales
from cxstream.core.buckets import add_response, fits
from cxstream.core.caps import (
    CAP_VALUE_MAX,
    DIMENSION_ENTRY_MAX,
    cap_writes,
    notices,
    slots_of,
)
from cxstream.core.scoring import Increment, category, plus
from cxstream.core.scoring import zero as zero_counts
from cxstream.core.segments import dimension_values, program_key, segment_keys
from cxstream.core.windows import DAY, is_too_late

Outcome = Literal["accepted", "duplicate", "deadlettered", "too_late", "replayed"]
Kind = Literal["surveys", "interactions", "customers"]

#: Short name of the offset stamp of interactions in a customer record of version 1 or 2
#: (responses stamp "s", profiles "c"; interactions now stamp the journey's entry).
_LEGACY_STAMP = "i"
#: The admitted dimensions, and the programs, of a partition that has none yet (never
#: mutated).
_NO_DIMENSIONS: dict[str, int] = {}
_NO_PROGRAMS: dict[str, str] = {}
#: `max.message.bytes` of a topic whose configuration cannot be read: Kafka's default.
DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
#: Bytes of a changelog record besides its value, at most: the record batch's header (61),
#: the record's lengths, offset and time (under 40) and its key (a customer id of up to 128
#: characters of up to 6 bytes each once escaped, quoted, with its prefix).
RECORD_OVERHEAD = 1024
#: `StepConfig.entry_max_bytes` by default: for a changelog with Kafka's default limit.
ENTRY_MAX_BYTES = DEFAULT_MAX_MESSAGE_BYTES - RECORD_OVERHEAD
#: A customer record besides its remembered survey ids, and one remembered id, at most
#: (every field at its longest, of the widest characters: tests/unit/core/test_step.py
#: builds such a record), and the same for a journey and one of its interactions. An entry
#: under these estimates is not encoded to be measured.
CUSTOMER_MAX_FIXED = 65_536
SEEN_ID_MAX = 800
JOURNEY_MAX_FIXED = 64
JOURNEY_ENTRY_MAX = 2_400


class StateView(Protocol):
    """Read access to the state table (a Faust table, or a dict in tests)."""

    def get(self, key: str, default: Any = None) -> Any: ...


@dataclass(frozen=True, slots=True)
class StepConfig:
    horizon_ms: int
    dimensions: frozenset[str] | None = None
    value_cap: int = 50
    journey_length: int = 10
    #: The earliest timestamp the decoders accept (epoch ms, `CXSTREAM_MIN_EVENT_TIME`).
    min_event_ms: int = DEFAULT_MIN_EVENT_MS
    #: Distinct dimensions counted per partition when `dimensions` is None
    #: (`CXSTREAM_MAX_DIMENSIONS`; 0: no cap).
    max_dims: int = 20
    #: Counted dimensions of one response above which it counts in `all` only
    #: (`CXSTREAM_MAX_RESPONSE_DIMENSIONS`; 0: no cap).
    max_response_dims: int = 16
    #: Most bytes a stored entry's value may take: what one record of the state changelog
    #: can hold (`entry_bound`). A message whose writes would pass it is dead-lettered.
    entry_max_bytes: int = ENTRY_MAX_BYTES
    #: The survey programs (`cxstream.core.programs.rules` of the registry): what each
    #: answer adds, and where it counts. Default: the three built-ins. Set with `scales`,
    #: from one registry: `with_programs`.
    rules: Mapping[str, Rule] = field(default_factory=lambda: BUILTIN_RULES)
    #: Program id → (metric, low, high), for the decoder (None: the built-ins).
    scales: Scales | None = None
    #: The segment targets checked (`cxstream.core.targets.TargetConfig`; None: off): a
    #: response that moves the stream time past a boundary reports the partition's counts.
    targets: Any = None
    #: Whether CSAT and CES answers cause `at_risk` alerts (`CXSTREAM_AT_RISK`).
    at_risk: bool = True
    priority: Any = None  #: `core.priority.PriorityRules` (CXSTREAM_PRIORITY_*); None: defaults


def with_programs(cfg: StepConfig, registry: Registry) -> StepConfig:
    """`cfg` planning the answers of `registry`'s programs: the decoder's `scales` and the
    planner's `rules`, which must agree, both taken from it."""
    return replace(cfg, rules=rules(registry), scales=scales(registry))


def entry_bound(max_message_bytes: int) -> int:
    """The bound on a stored entry's value (`StepConfig.entry_max_bytes`) for a changelog
    topic whose `max.message.bytes` is `max_message_bytes`: less `RECORD_OVERHEAD`, room
    for the record batch's header, the record's own fields and its key."""
    return max_message_bytes - RECORD_OVERHEAD


def fitted(cfg: StepConfig) -> StepConfig:
    """`cfg` with the value and dimension caps lowered, if need be, so that a cap entry at
    its fullest fits in `cfg.entry_max_bytes` (each value at its widest, `CAP_VALUE_MAX`
    bytes; each dimension `DIMENSION_ENTRY_MAX`). The caps are then the only bound those
    entries need: a new value or dimension past them counts as `other` or not at all."""
    cap = min(cfg.value_cap, (cfg.entry_max_bytes - 2) // CAP_VALUE_MAX)
    dims = min(cfg.max_dims, (cfg.entry_max_bytes - 2) // DIMENSION_ENTRY_MAX)
    if cap == cfg.value_cap and dims == cfg.max_dims:
        return cfg
    return replace(cfg, value_cap=max(cap, 0), max_dims=max(dims, 0))


class Plan(Record):
    """Effects of one message, in the order they must be carried out. (A `Record`, not a
    dataclass: one is built per message, and a dataclass's `__init__` stays interpreted
    under mypyc, so this class writes its own, which is compiled.)"""

    __slots__ = ("outcome", "rejection", "before_alert", "alert", "after_alert", "stream_time",
                 "survey", "program", "category", "folded", "notices", "seal")

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
        #: The program of an accepted response (`survey` is its metric), for the metrics.
        self.program: str | None = None
        self.category: str | None = None
        self.folded: tuple[str, ...] = ()
        #: Why an accepted response did not count in all of its segments (a bound was
        #: reached): each is dead-lettered for information, the response still counts.
        self.notices: tuple[Rejection, ...] = ()
        #: The writes must land after every write of the partition's earlier messages, not
        #: coalesced with them: they drop dead value slots (`cxstream.core.caps`).
        self.seal: bool = False

    def _fields(self) -> tuple[object, ...]:
        return (self.outcome, self.rejection, self.before_alert, self.alert, self.after_alert,
                self.stream_time, self.survey, self.program, self.category, self.folded,
                self.notices, self.seal)


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
    used only for the decoder's future-timestamp rule and the alert's `detected_at`
    (`cfg.min_event_ms` is the decoder's earliest timestamp).

    Returns the `Plan`, whose `outcome` is one of:

    * ``deadlettered`` (the message does not decode, or `entry_too_large`: it would grow a
      state entry past `cfg.entry_max_bytes`) or ``too_late`` (a response older than stream
      time minus `cfg.horizon_ms`): `rejection` says why; nothing to write but, for
      `entry_too_large`, the caps it took (`before_alert`) and, not counted as it is, the
      stream time it advances (`after_alert`), as any response not too late (`_too_large`).
    * ``replayed``: the entry the message changes already carries its offset (applied
      before a crash); nothing to write but, for a response, the stream time again if it was
      lost (idempotent: a max).
    * ``duplicate``: a survey `event_id` the customer already has: `after_alert` holds the
      customer record with its stamp moved on (after the journey it may move, as below)
      and the stream time, when it advances.
    * ``accepted``: `before_alert` holds the response's caps, then its buckets; `alert` the
      alert of a turn, if any; `after_alert` the journey moved out of a record of an earlier
      layout, the customer record (or, for an interaction, only its journey entry) and last
      the stream time; `notices`, when a cap on dimensions or values kept the response out
      of some of its segments (it counts in the others).

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
        interaction = decode_interaction(raw, key, now_ms, cfg.min_event_ms)
        if isinstance(interaction, Rejection):
            return Plan("deadlettered", rejection=interaction)
        journey, stamp = _journey(view, interaction.customer_id)
        if stamp >= offset:
            return Plan("replayed")
        journey = apply_interaction(journey, interaction, journey_len=cfg.journey_length)
        # Written even when unchanged (a repeated event id): the stamp moves on.
        return _checked(Plan("accepted", after_alert=[
            (keys.journey_key(interaction.customer_id), journey_to_json(journey, offset))]),
            cfg)
    profile = decode_profile(raw, key, now_ms, cfg.min_event_ms)
    if isinstance(profile, Rejection):
        return Plan("deadlettered", rejection=profile)
    ckey = keys.customer_key(profile.customer_id)
    state, stamps, legacy = _customer(view, ckey)
    if stamps.get("c", -1) >= offset:
        return Plan("replayed")
    state = state if state is not None else CustomerState.empty(profile.customer_id)
    stamps["c"] = offset
    return _checked(Plan("accepted", after_alert=_customer_writes(
        view, ckey, apply_profile(state, profile), stamps, legacy)), cfg)


def _survey(
    view: StateView, cfg: StepConfig, partition: int, offset: int,
    key: bytes | None, raw: bytes, now_ms: int,
) -> Plan:
    r = decode_survey(raw, key, now_ms, cfg.min_event_ms, cfg.scales)
    if isinstance(r, Rejection):
        return Plan("deadlettered", rejection=r)
    ckey = keys.customer_key(r.customer_id)
    state, stamps, legacy = _customer(view, ckey)
    st_rec = view.get(keys.stream_time_key(partition))
    stream_time = st_rec["t"] if st_rec is not None else None
    if stamps.get("s", -1) >= offset or (st_rec is not None and st_rec.get("r", -1) >= offset):
        # Applied before a crash (the customer's stamp says so, or the partition's: `r` is
        # written last, see `_advance`; it is the one an `entry_too_large` has, as it
        # stamps no customer); only the stream time may have been lost with it (it is
        # written last), and taking the max again is idempotent.
        out = Plan("replayed")
        _advance(out, partition, st_rec, r.occurred_at if stream_time is None
                 else max(stream_time, r.occurred_at), offset)
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
        _advance(out, partition, st_rec, new_st, offset)
        return _checked(out, cfg, 0, True)

    out = Plan("accepted", survey=r.survey)
    out.program = r.program
    dims: Any = None  # the partition's admitted dimensions, when they are capped
    if cfg.dimensions is None and cfg.max_dims > 0:
        dims = view.get(keys.dimensions_key(partition)) or _NO_DIMENSIONS
    # The stored slots are used as they are, not copied (never mutated: `caps.cap_writes`).
    # A dimension that cannot be admitted has no slots to read.
    day = r.occurred_at // DAY
    live_from = (new_st - cfg.horizon_ms) // DAY  # the first day still in the horizon
    admitted: dict[str, Any] = {}
    old_layout: list[str] = []
    for dim in dimension_values(r):
        if ((cfg.dimensions is None or dim in cfg.dimensions)
                and (dims is None or dim in dims or len(dims) < cfg.max_dims)):
            slots, old = slots_of(view.get(keys.cap_key(partition, dim)), live_from)
            admitted[dim] = slots
            if old:
                old_layout.append(dim)
    seg = segment_keys(r, dimensions=cfg.dimensions, admitted=admitted, cap=cfg.value_cap,
                       dims=dims, max_dims=cfg.max_dims,
                       max_response_dims=cfg.max_response_dims, day=day, live_from=live_from)
    out.folded = seg.folded
    if seg.folded or seg.dropped or seg.too_many:
        out.notices = notices(seg, cfg.value_cap, cfg.max_dims, cfg.max_response_dims)
    if seg.admit_dims:
        # Before the value caps and the buckets: see `cxstream.core.batch` on the order.
        grown = dict(dims)
        for dim in seg.admit_dims:
            grown[dim] = offset
        out.before_alert.append((keys.dimensions_key(partition), grown))
    if seg.admit or seg.seen or old_layout:
        out.before_alert.extend(cap_writes(partition, seg, admitted, old_layout, day, live_from))
        out.seal = len(seg.prune) > 0
    caps = len(out.before_alert)
    rule = cfg.rules[r.program]  # the decoder accepts only the registry's programs
    counted = seg.keys
    if rule[3]:  # a program's own answers also count under keys of their own
        counted = (*seg.keys, *[program_key(r.program, key) for key in seg.keys])
        pkey = keys.programs_key(partition)
        known = view.get(pkey) or _NO_PROGRAMS
        if r.program not in known:  # checked against the registry at assignment
            out.before_alert.append((pkey, {**known, r.program: rule[6]}))
    if not _add_to_buckets(out.before_alert, view, partition, offset, r, counted,
                           rule[5][r.score - rule[1]], cfg.entry_max_bytes):
        _advance(out, partition, st_rec, new_st, offset)  # kept: see `_too_large`
        return _too_large(out, caps, True, (
            "its segments would grow the partition's entry of their day past "
            f"{cfg.entry_max_bytes} bytes, the most a record of the state changelog holds "
            "(its max.message.bytes): lower CXSTREAM_MAX_DIMENSIONS or "
            "CXSTREAM_SEGMENT_VALUE_CAP, or raise the changelog topic's max.message.bytes"))

    new_state, turn = apply_survey(state, r, horizon_start_ms=new_st - cfg.horizon_ms,
                                   turns=rule[4], rules=cfg.rules if cfg.at_risk else None)
    if turn is not None:
        journey, _ = _journey(view, r.customer_id, (legacy, stamps))
        out.alert = build_alert(state, r, turn, journey=journey, detected_at_ms=now_ms,
                                rules=cfg.priority)
    stamps["s"] = offset
    out.after_alert.extend(_customer_writes(view, ckey, new_state, stamps, legacy))
    _advance(out, partition, st_rec, new_st, offset)
    if r.survey == "nps":
        out.category = category(r.score)
    return _checked(out, cfg, caps, True)


def _add_to_buckets(writes: list[tuple[str, Any]], view: StateView, partition: int,
                    offset: int, r: SurveyResponse, segments: tuple[str, ...],
                    inc: Increment, bound: int) -> bool:
    """Append the bucket writes of response `r` (at `offset`): its minute, hour and day
    entries, each with the response added as `inc` (its program's increment of its score,
    decoded in range) under every key of `segments` (`buckets.add_response`), skipping
    those that already hold it.

    Returns False, appending nothing, when the day entry would pass `bound` bytes
    (`buckets.fits`): it holds every segment of the minute and hour entries too, so they
    fit when it does. Decided on the day entry whatever its stamp, the same way in a replay
    that finds it holding later responses (`buckets.fits`)."""
    fresh = plus(zero_counts(), inc)
    get = view.get
    bkeys = keys.bucket_keys_at(partition, r.occurred_at)
    stored = [get(bkey) for bkey in bkeys]
    if not fits(stored[-1], segments, bound):
        return False
    for bkey, old in zip(bkeys, stored):
        new = add_response(old, offset, segments, inc, fresh)
        if new is not None:
            writes.append((bkey, new))
    return True


def _checked(out: Plan, cfg: StepConfig, caps: int = 0, response: bool = False) -> Plan:
    """`out`, or the rejection `entry_too_large` when one of its customer records or
    journeys would pass `cfg.entry_max_bytes` (keeping the first `caps` writes of
    `before_alert`, its caps, and for a `response` the stream time: `_too_large`). Those
    entries are per customer and stamped with the offset of the message that wrote them
    last, so a replay reads each either as this message found it, or as already past it
    (and skips the message): the decision is the same. Measured only when a cheap estimate
    from their number of remembered ids or interactions does not already show that they
    fit."""
    bound = cfg.entry_max_bytes
    for key, value in out.after_alert:
        if key.startswith(keys.CUSTOMER_PREFIX):
            estimate = CUSTOMER_MAX_FIXED + len(value["s"]["s"]) * SEEN_ID_MAX
            what = "customer record (its remembered survey ids and latest answers)"
        elif key.startswith(keys.JOURNEY_PREFIX):
            estimate = JOURNEY_MAX_FIXED + len(value["j"]) * JOURNEY_ENTRY_MAX
            what = "journey (its recent interactions: lower CXSTREAM_JOURNEY_LENGTH)"
        else:
            continue
        if estimate > bound and len(orjson.dumps(value)) > bound:
            return _too_large(out, caps, response, (
                f"the customer's {what} would pass {bound} bytes, the most a record of the "
                "state changelog holds (its max.message.bytes): raise the changelog topic's "
                "max.message.bytes"))
    return out


def _too_large(planned: Plan, caps: int, response: bool, why: str) -> Plan:
    """The rejection `entry_too_large` of the message `planned` was for: no count and no
    customer change. Kept: its value and dimension caps (the first `caps` writes of
    `before_alert`): a later message found the slots as this one left them, and so must a
    replay of it, or it could fold a value this one took a slot for and size it otherwise
    (`buckets.fits`). For a `response`, the stream time it advances, as any response
    not too late does, with the partition's mark `r` (`_advance`): this message stamps no
    customer, and the mark is what makes a replay skip it once its writes landed, so it is
    never planned again against slots that later messages changed (`cxstream.core.caps`)."""
    out = Plan("deadlettered", rejection=Rejection(
        ErrorCode.ENTRY_TOO_LARGE, f"not counted: {why}; then replay this dead letter"))
    out.before_alert = planned.before_alert[:caps]
    out.seal = planned.seal
    if response:  # the stream time write, with its mark, is the last of a response
        out.after_alert = planned.after_alert[-1:]
        out.stream_time = planned.stream_time
    return out


def _advance(out: Plan, partition: int, st_rec: Any, new: int, offset: int) -> None:
    """Stream time = the highest occurred_at of any valid, not-too-late response, counted or
    not (`_too_large`); written last, after everything else the message changes, with `r`,
    the offset of the partition's latest response planned (a max, so a replay writes what
    the clean run did). Written last, `r` implies that every earlier write landed: a replay
    skips a response at or below it (`_survey`)."""
    old = None if st_rec is None else st_rec["t"]
    mark = -1 if st_rec is None else st_rec.get("r", -1)
    out.after_alert.append((keys.stream_time_key(partition),
                            {"t": new, "r": offset if offset > mark else mark}))
    if new != old:
        out.stream_time = new
