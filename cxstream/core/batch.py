"""The state writes of a batch of input messages, coalesced per key.

Why: every table write is one changelog record and costs tens of microseconds in Faust; a
response touches about 6 entries (its minute, hour and day buckets, caps, customer, stream
time), most of them shared with the other responses of the batch. Planning each message
against this overlay and writing each key once per batch gives the same final state with far
fewer records.

Crash safety needs more than the final values: the changelog of a partition must be such
that any *prefix* of it (a crash loses a suffix) is a state the replay repairs exactly. Per
message, `cxstream.core.step` orders the writes caps → buckets → journey → customer → stream
time, and every bucket, journey and customer entry is stamped with the offset it last
applied. Writing the coalesced entries kind by kind in that same order keeps the property for
the whole batch: a persisted customer entry implies that every bucket and cap (holding its
message) persisted before it, and so did the journey it moved out of a record of an earlier
layout; the stream time, written last, never runs ahead of the entries that justify it.
Expired buckets are deleted after the stream time, as per message.

One kind of write is not growth: dropping dead value slots (`cxstream.core.caps`). A message
that drops some *seals* its partition's writes so far (`PendingWrites.seal`): they are written
first, in the order above, and the message's writes, coalesced with those after it, follow
as a part of their own, so no replay of a message before it can see the drop.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import chain
from typing import Any, Callable

from cxstream.core import keys
from cxstream.core.deadletter import processing_error
from cxstream.core.errors import Rejection
from cxstream.core.step import Kind, StateView, StepConfig, plan
from cxstream.core.store import StoreReader
from cxstream.core.targets import plan_report, report_crossings

#: Write order of the key kinds within one partition (see the module docstring).
_RANK = {keys.CAP: 0, keys.PROGRAMS: 0, keys.TARGET_STATUS: 0, keys.BUCKET: 1,
         keys.TARGET_PENDING: 1, keys.JOURNEY: 2, keys.CUSTOMER: 3, keys.STREAM_TIME: 4}
#: Marks a key without a pending write (None is a value like any other).
_ABSENT: Any = object()


class PendingWrites:
    """Reads through to `table`; holds this batch's writes per partition until flushed."""

    __slots__ = ("_table", "_reader", "_all", "_by_partition", "_sealed")

    def __init__(self, table: StateView) -> None:
        self._table = table
        #: The same, when it is the worker's reader: called directly (compiled), not
        #: through the protocol.
        self._reader: StoreReader | None = table if isinstance(table, StoreReader) else None
        self._all: dict[str, Any] = {}
        self._by_partition: dict[int, dict[str, Any]] = {}
        #: partition → its sealed parts, oldest first (`seal`).
        self._sealed: dict[int, list[dict[str, Any]]] = {}

    def get(self, key: str, default: Any = None) -> Any:
        # One lookup in the batch's writes, not two: this runs several times per message.
        value = self._all.get(key, _ABSENT)
        if value is not _ABSENT:
            return value
        if self._reader is not None:
            return self._reader.get(key, default)
        return self._table.get(key, default)

    def put(self, partition: int, items: Sequence[tuple[str, Any]]) -> None:
        """Write each (key, value) of `items` in order, for partition `partition`. (A loop:
        compiled, `dict.update` with a list first looks for a `keys` attribute on it.)"""
        writes = self._by_partition.get(partition)
        if writes is None:
            writes = self._by_partition[partition] = {}
        every = self._all
        for key, value in items:
            every[key] = value
            writes[key] = value

    def seal(self, partition: int) -> None:
        """End the partition's current part: its writes so far are written before, and
        coalesced apart from, any write put after this call (reads are unchanged)."""
        writes = self._by_partition.pop(partition, None)
        if writes:
            self._sealed.setdefault(partition, []).append(writes)

    def __len__(self) -> int:
        return (sum(len(w) for w in self._by_partition.values())
                + sum(len(w) for parts in self._sealed.values() for w in parts))

    def partitions(self) -> list[int]:
        return sorted(self._by_partition.keys() | self._sealed.keys())

    def ordered(self, partition: int) -> Iterator[tuple[str, Any]]:
        """The partition's coalesced writes, part by part (`seal`), each caps first and
        stream time last."""
        parts = [*self._sealed.get(partition, ()), self._by_partition.get(partition, {})]
        # Grouped by kind in one pass (stable, like a sort by rank, without a key call each).
        groups: list[list[tuple[str, Any]]] = []
        for writes in parts:
            part: list[list[tuple[str, Any]]] = [[] for _ in _RANK]
            for item in writes.items():
                part[_RANK[item[0][:1]]].append(item)
            groups.extend(part)
        return chain.from_iterable(groups)


class Planned:
    """What planning a batch's records produced, for the agent to carry out: the alerts,
    each partition's new stream time, the rejected records with why, and the metric
    increments (added to Prometheus once per label set and batch, as a labelled increment
    costs about as much as planning a message's cheap parts)."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        #: (report partition, record value) of the target reports of the batch's boundary
        #: crossings (`cxstream.core.targets`), sent and acknowledged with the alerts.
        self.reports: list[tuple[int, bytes]] = []
        #: report partition → boundaries waiting for reports there, after the batch.
        self.waiting: dict[int, int] = {}
        #: outcome → target report records planned (`plan_reports`).
        self.checks: dict[str, int] = {}
        #: partition → its new stream time, for the partitions whose stream time advanced.
        self.advanced: dict[int, int] = {}
        #: (rejection, record), dead-lettered once the batch is planned.
        self.rejected: list[tuple[Rejection, Any]] = []
        #: (kind, outcome) → events; (survey, program, category or "none") → accepted
        #: responses; dimension → responses whose value went to "<dimension>:other".
        self.events: dict[tuple[str, str], int] = {}
        self.responses: dict[tuple[str, str, str], int] = {}
        self.folds: dict[str, int] = {}


def plan_records(kind: Kind, records: Sequence[Any], pending: PendingWrites, cfg: StepConfig,
                 now_ms: int, out: Planned, failed: Callable[[Any, Exception], None]) -> None:
    """Plan `records` into the batch's pending writes and `out`, one record after another.

    `records`: Kafka records (with `partition`, `offset`, `key`, `value`) of the topic
    `kind`, of one partition, in offset order. `pending`: the batch's writes so far over
    the store, which each record is planned against and its writes added to, so a record
    sees those of every record before it. `cfg` and `now_ms` are passed to
    `cxstream.core.step.plan`. `out` collects, in record order, the alerts, the rejected
    records with why, each partition's new stream time and the metric counts. `failed`:
    called with a record and the exception its planning raised, to log it.

    Returns None. Never raises for a bad record: a record that does not decode or comes too
    late is rejected with its reason; an accepted response that did not count in every one
    of its segments (a dimension or value cap was reached) is also listed in
    `out.rejected`, once per reason (`Plan.notices`), for an informational dead letter;
    one whose planning raises an `Exception` is rejected as a processing error after
    `failed(record, exc)`. One bad event must never stop the stream; only an exception of
    `failed` itself, or one that is not an `Exception`, ends the loop.

    Guarantee: the pending writes, coalesced per key, give the same final state as the
    records planned and written one at a time; written kind by kind (`PendingWrites.ordered`)
    after the broker has acknowledged the alerts, they keep the crash safety of the module
    docstring. Why here: the loop runs for every event (compiled, see setup.py)."""
    events = out.events
    targets = cfg.targets if kind == "surveys" else None
    stream_time: int | None = None
    if targets is not None and records:
        rec = pending.get(keys.stream_time_key(records[0].partition))
        stream_time = None if rec is None else rec["t"]
    for msg in records:
        partition: int = msg.partition
        try:
            p = plan(kind, pending, cfg, partition=partition, offset=msg.offset,
                     key=msg.key, value=msg.value, now_ms=now_ms)
        except Exception as exc:  # noqa: BLE001 - one bad event must never stop the stream
            failed(msg, exc)
            out.rejected.append((processing_error(exc), msg))
            _count(events, (kind, "deadlettered"))
            continue
        _count(events, (kind, p.outcome))
        if p.seal:
            pending.seal(partition)
        if p.rejection is not None:
            out.rejected.append((p.rejection, msg))
            # `entry_too_large` keeps its admissions and its stream time (`step._too_large`).
            if p.before_alert:
                pending.put(partition, p.before_alert)
            if p.after_alert:
                pending.put(partition, p.after_alert)
            if p.stream_time is not None:
                out.advanced[partition] = p.stream_time
                if targets is not None:
                    report_crossings(pending.get, partition, stream_time, p.stream_time,
                                     targets, out.reports)
                    stream_time = p.stream_time
            continue
        if p.before_alert:  # empty for interactions, most of the stream
            pending.put(partition, p.before_alert)
        pending.put(partition, p.after_alert)
        if p.alert is not None:
            out.alerts.append(p.alert)
        for notice in p.notices:  # counted, but not in every segment: told, for information
            out.rejected.append((notice, msg))
        if p.outcome == "accepted" and p.survey is not None:
            label = (p.survey, p.program or p.survey, p.category or "none")
            out.responses[label] = out.responses.get(label, 0) + 1
            for dim in p.folded:
                out.folds[dim] = out.folds.get(dim, 0) + 1
        if p.stream_time is not None:
            out.advanced[partition] = p.stream_time
            if targets is not None:
                report_crossings(pending.get, partition, stream_time, p.stream_time, targets,
                                 out.reports)
                stream_time = p.stream_time


def plan_reports(records: Sequence[Any], pending: PendingWrites, cfg: StepConfig,
                 now_ms: int, out: Planned, failed: Callable[[Any, Exception], None]) -> None:
    """Plan the target report records `records` (of one report partition, in offset order;
    `cxstream.core.targets.plan_report`) into the batch's pending writes and `out`: the
    alerts of the boundaries they complete, their rejections, the boundaries left waiting.
    Counted by outcome in `out.checks` (``ignored`` with the checks off: `cfg.targets`
    None). Never raises for a bad record, as `plan_records`."""
    checks = out.checks
    targets = cfg.targets
    for msg in records:
        if targets is None:
            checks["ignored"] = checks.get("ignored", 0) + 1
            continue
        try:
            p = plan_report(pending.get, targets, msg.partition, msg.value, now_ms)
        except Exception as exc:  # noqa: BLE001 - one bad record must never stop the stream
            failed(msg, exc)
            out.rejected.append((processing_error(exc), msg))
            checks["deadlettered"] = checks.get("deadlettered", 0) + 1
            continue
        checks[p.outcome] = checks.get(p.outcome, 0) + 1
        if p.rejection is not None:
            out.rejected.append((p.rejection, msg))
        out.alerts.extend(p.alerts)
        if p.first:  # sums no status names any more: written first, and apart
            pending.put(msg.partition, p.first)
            pending.seal(msg.partition)
        if p.writes:  # a rejected report may still drop its window (`entry_too_large`)
            pending.put(msg.partition, p.writes)
        out.waiting[msg.partition] = p.waiting


def _count(counter: dict[tuple[str, str], int], label: tuple[str, str]) -> None:
    counter[label] = counter.get(label, 0) + 1
