"""The processor: takes the input records of each fetch, asks the core for a plan per
record, carries the plans out.

One processor per worker handles the three co-partitioned input topics one batch at a time
(`cxstream.worker.consumer` hands it the records below Faust's per-message streams), so
everything about one customer happens in order, and all state of input partition *p* is
written to changelog partition *p* (see `cxstream.core.step` for why that makes replays
exact). No business rule lives here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Any, Callable

import faust
from aiokafka.errors import KafkaError
from faust.types import TP

from cxstream import metrics
from cxstream.worker.consumer import Batch, batching_consumer
from cxstream.worker.changelog import ChangelogWriter, aiokafka_producer, partition_databases
from cxstream.core import keys
from cxstream.core.alert import alert_key, cloudevent_headers
from cxstream.core.batch import PendingWrites, Planned, plan_records, plan_reports
from cxstream.core.errors import Rejection
from cxstream.core.expiry import ExpiryIndex
from cxstream.core.priority import PriorityRules
from cxstream.core.programs import conflicts
from cxstream.core.step import Kind, StepConfig, entry_bound, fitted, with_programs
from cxstream.core.targets import TargetConfig, stale_reports
from cxstream.core.store import StoreReader, stored_value
from cxstream.core.windows import DAY
from cxstream.kafka.admin import (
    TopicError,
    check_copartitioned,
    state_changelog,
    target_reports,
)
from cxstream.kafka.limits import max_message_bytes
from cxstream.kafka.retry import until_acknowledged
from cxstream.worker.limits import Limits, fitted_alert, fitted_dead_letter
from cxstream.config import surveys
from cxstream.config.settings import Settings
from cxstream.kafka.topics import Topics

log = logging.getLogger(__name__)


class Processor:
    """Carries out plans against the state table and the output topics."""

    def __init__(self, app: faust.App, settings: Settings, state: faust.Table) -> None:
        self.app = app
        self.settings = settings
        self.state = state
        self.topics = Topics(settings.topic_prefix)
        self.kinds: dict[str, Kind] = {
            self.topics.surveys: "surveys",
            self.topics.interactions: "interactions",
            self.topics.customers: "customers",
        }
        #: The internal topic of segment target reports (`cxstream.core.targets`), read
        #: with the inputs: report partition q goes with input partition q, and so does its
        #: state.
        self.reports_topic = target_reports(settings)
        #: The survey programs (`CXSTREAM_SURVEYS`), read once: a worker never starts on a
        #: registry it cannot read (`SurveysError`, one line per problem).
        self.programs = surveys.registry(settings.surveys, settings.max_programs)
        self.cfg = fitted(with_programs(StepConfig(
            horizon_ms=settings.horizon_ms,
            dimensions=settings.segment_dimensions,
            value_cap=settings.segment_value_cap,
            journey_length=settings.journey_length,
            at_risk=settings.at_risk,
            priority=PriorityRules(settings.priority_rules, settings.priority_words),
            min_event_ms=settings.min_event_time,
            max_dims=settings.max_dimensions,
            max_response_dims=settings.max_response_dimensions,
            targets=target_config(settings, self.programs),
        ), self.programs))
        #: `max.message.bytes` of the topics written, read at each assignment (`read_limits`).
        self.limits = Limits()
        self.alerts = _Topic(app, self.topics.alerts)
        self.reports = _Topic(app, self.reports_topic)
        self.deadletters = _Topic(app, self.topics.deadletter)
        self.indexes: dict[int, ExpiryIndex] = {}
        #: Per partition, target sums of windows decided already that a crash left behind
        #: (`stale_reports`): deleted with the partition's next batch.
        self.stale: dict[int, list[str]] = {}
        #: Owned partitions whose stored programs agree with the registry (`check_programs`).
        self.checked: set[int] = set()
        self.pending: list[asyncio.Future[None]] = []
        store: Any = getattr(state, "data", state)
        self.reader = StoreReader(partition_databases(state), getattr(store, "data", store),
                                  self.indexes)
        #: Writes of the batch being completed, until they are in the store (`process`).
        self.overlay: dict[str, Any] = {}
        self.completing: asyncio.Future[None] | None = None
        self.changelog = ChangelogWriter(app, state)
        self.source = f"cxstream/{settings.group_id}"

    async def read_limits(self) -> None:
        """Read the `max.message.bytes` of the state changelog, alert and dead-letter topics
        (at every partition assignment, before any input is processed: a topic's limit may
        have been changed meanwhile), and bound what is written by them from now on: state
        entries through `cfg.entry_max_bytes` (and the caps `fitted` to it), alerts and dead
        letters as they are sent (`cxstream.worker.limits`). A limit that cannot be read
        keeps what was read before, or Kafka's default (the read logs a warning)."""
        changelog = state_changelog(self.settings)
        found = await max_message_bytes(
            self.settings, (changelog, self.topics.alerts, self.topics.deadletter,
                            self.reports_topic))
        if not found:
            return
        self.limits.by_topic.update(found)
        limit = self.limits.of(changelog)
        self.changelog.max_message_bytes = limit
        targets = self.cfg.targets
        if targets is not None:
            targets = replace(targets, max_entry_bytes=entry_bound(limit),
                              max_report_bytes=entry_bound(self.limits.of(self.reports_topic)))
        cfg = fitted(replace(self.cfg, entry_max_bytes=entry_bound(limit),
                             value_cap=self.settings.segment_value_cap,
                             max_dims=self.settings.max_dimensions, targets=targets))
        if (cfg.value_cap, cfg.max_dims) != (self.settings.segment_value_cap,
                                             self.settings.max_dimensions):
            log.warning("the state changelog's max.message.bytes (%d) holds at most %d values "
                        "per dimension and %d dimensions: CXSTREAM_SEGMENT_VALUE_CAP and "
                        "CXSTREAM_MAX_DIMENSIONS are lowered to that; raise the topic's "
                        "max.message.bytes to keep them", limit, cfg.value_cap, cfg.max_dims)
        self.cfg = cfg

    # -- expiry index ---------------------------------------------------------------------
    def index(self, partition: int) -> ExpiryIndex:
        """The partition's bucket index, rebuilt from the table after (re)assignment."""
        idx = self.indexes.get(partition)
        if idx is None:
            idx = ExpiryIndex()
            # Kept only once the table is fully recovered: an index built from a half-restored
            # table (a query during recovery) would miss segments and expiries for good.
            if self.app.tables.recovery.completed.is_set() and not self.app.rebalancing:
                self.indexes[partition] = idx
            prefix = keys.bucket_prefix(partition)
            reports = keys.target_pending_key(partition, 0)[:-1]
            # The store, and the buckets of the batch still being written (`overlay`). Only
            # day entries are read: the index takes the segments from them.
            get = self.stored(partition)
            stored = [key for key in self.state.keys() if key not in self.overlay]
            written = [key for key, value in self.overlay.items() if value is not None]
            leftover: list[str] = []
            for key in (*stored, *written):
                if key.startswith(reports):
                    leftover.append(key)
                elif key.startswith(prefix):
                    try:
                        _, res, _ = keys.parse_bucket_key(key)
                    except ValueError:
                        raise RuntimeError(
                            f"the state of partition {partition} holds segment buckets of an "
                            "earlier cxstream layout (one entry per segment), which this release "
                            "does not read: see 'State layout' in docs/operating/state.md (stop "
                            "every worker, delete the state changelog topic and each worker's "
                            "CXSTREAM_DATA_DIR, start again)") from None
                    if res == DAY:
                        idx.add_bucket(key, self.overlay[key] if key in self.overlay else get(key))
                    else:
                        idx.add_bucket(key, None)
            self.stale[partition] = stale_reports(
                leftover, self.overlay.get(keys.target_status_key(partition))
                or get(keys.target_status_key(partition)))
        return idx

    def stored(self, partition: int) -> Callable[[str], Any]:
        """Lookups in the local store of one owned partition: what `state.get` returns, for
        queries and scrapes. Faust's table tries every partition's database for a key read
        outside a message (four reads for a missing bucket, with four partitions) and decodes
        through its codec; a scrape reads tens of thousands of buckets."""
        database = partition_databases(self.state)
        if database is None:
            return self.state.get
        db = database(partition)
        return lambda key: stored_value(db, key)

    def check_programs(self, partition: int) -> None:
        """Refuse to process a partition whose state counted a survey program on another
        metric or scale than the registry now gives it: those counts only mean something on
        their scale. Checked once per assignment, before the partition's first batch.

        Raises RuntimeError naming each program, what the state holds and what the registry
        says, and the way out (which stops the worker, as a failed batch does)."""
        if partition in self.checked:
            return
        stored = self.stored(partition)(keys.programs_key(partition)) or {}
        found = conflicts(stored, self.programs)
        if found:
            changes = "; ".join(f"{pid}: counted as {old}, now {new}" for pid, old, new in found)
            raise RuntimeError(
                f"the survey registry (CXSTREAM_SURVEYS) changes the metric or scale of "
                f"programs that partition {partition} has data for ({changes}). A program's "
                "metric and scale cannot change once it has data: restore the definition, "
                "and give the new one a new id (see 'Changing a program' in "
                "docs/concepts/programs.md)")
        self.checked.add(partition)

    def forget(self, partitions: set[int]) -> None:
        """Called at every rebalance: what was read or indexed may change hands meanwhile."""
        self.reader.clear()
        self.checked.clear()
        for p in partitions:
            self.indexes.pop(p, None)
            for gauge in (metrics.STREAM_TIME, metrics.TARGET_PENDING):
                try:
                    gauge.remove(str(p))  # never export a stale partition
                except KeyError:
                    pass

    # -- per batch ------------------------------------------------------------------------
    async def process(self, batch: Batch, fetched_at: float | None = None) -> asyncio.Future[None]:
        """Process the input records of one fetch: plan them now, and return the rest of the
        work, under way.

        `batch`: the records by input partition (`cxstream.worker.consumer`), each list in
        offset order. `fetched_at`: `time.monotonic()` when they were fetched (for the
        alert-latency histogram), None when unknown.

        Before returning, every record is planned (`cxstream.core.batch.plan_records`),
        partition by partition, against this batch's pending writes over the store and the
        previous batch's writes (`overlay`); each dead letter is handed to the producer; the
        state entries are put in the crash-safe order per partition, followed by deletions
        of the buckets the new stream time expired, and become the new `overlay`.

        Returns a future of the rest, in this order: hand the alerts to the producer; wait
        for the previous batch to complete; wait for the broker's acknowledgement of every
        alert and every dead letter; write the state entries (`ChangelogWriter.write`:
        changelog first, then the local store); count the metrics. Its records may be
        acknowledged only once it is done. Broker errors that
        waiting can fix are not raised: those sends are repeated until acknowledged
        (`until_acknowledged`); a refusal for good (a record over the topic's
        max.message.bytes, no ACL) fails the future with PermanentKafkaError, naming the fix
        (no input record is behind a refused alert or state write alone, so none is
        dead-lettered instead).

        Raises RuntimeError when a partition's state holds bucket entries of an earlier
        layout or programs the registry now defines otherwise (`check_programs`), or when
        the producer is not started (the future can fail with that too, or
        with ValueError for a state entry too large for a producer batch; a failed batch
        stops the consumer). A record that cannot be planned is dead-lettered instead
        (`plan_records`), never raised.

        Guarantees: input is processed at least once (a record is acknowledged only after
        its batch's future is done, so a crash reads it again), and every replay is exact:
        state entries carry the offsets they applied (`cxstream.core.step`), and the state of
        a partition reaches its changelog in the crash-safe order, before the local store.
        No alert is lost: the customer record that remembers a turn is written only after
        the broker acknowledged the alert, and a replay re-emits the same `alert_id`. Nor is
        a dead letter: the state is written only once the broker acknowledged them, so a
        record whose dead letter was not yet acknowledged is planned, and told, again.
        Batches complete one after another, in order, so the changelog keeps their order.

        Why split: the broker's acknowledgements take milliseconds; the next batch is planned
        meanwhile, reading this one's writes from `overlay` until they are in the store."""
        now_ms = int(time.time() * 1000)
        out = Planned()
        reader = self.reader
        pending = PendingWrites(reader)
        reader.top = self.overlay  # only while planning: after, the store may be ahead of it
        try:
            for tp, records in batch.items():
                self.check_programs(tp.partition)
                reader.use(tp.partition)
                if tp.topic == self.reports_topic:
                    plan_reports(records, pending, self.cfg, now_ms, out, _failed)
                else:
                    plan_records(self.kinds[tp.topic], records, pending, self.cfg, now_ms,
                                 out, _failed)
        finally:
            reader.top = {}
        for rejection, record in out.rejected:
            await self._dead_letter(rejection, record, now_ms)
        writes = {p: self._entries(p, pending, out.advanced.get(p))
                  for p in pending.partitions()}
        overlay = {k: v for entries in writes.values() for k, v in entries}
        self.overlay = overlay
        dead_letters, self.pending = self.pending, []
        done = asyncio.ensure_future(self._complete(
            self.completing, writes, overlay, out, dead_letters, fetched_at))
        self.completing = done
        return done

    async def _complete(self, previous: asyncio.Future[None] | None,
                        writes: dict[int, list[tuple[str, Any]]], overlay: dict[str, Any],
                        out: Planned, dead_letters: list[asyncio.Future[None]],
                        fetched_at: float | None) -> None:
        sent = [(alert, await self._produce_alert(alert)) for alert in out.alerts]
        reported = [(q, value, await _handed_over(self.reports, key=None, value=value,
                                                  partition=q))
                    for q, value in out.reports]
        if previous is not None:
            await previous  # its state first: the changelog keeps the batches' order
        await self._await_alerts(sent, fetched_at)
        # Before the state: the stream time that crossed a boundary is written only once
        # its reports are in, so a crash before reports again (`cxstream.core.targets`).
        for q, value, fut in reported:
            await until_acknowledged(
                lambda q=q, value=value: self._send_report(q, value),
                f"target report to partition {q}", kind="target_report",
                topic=self.reports_topic, first=fut)
        # Before the state: a response that counted but left a dimension or value out is
        # told by a dead letter, and once its customer record is written a replay skips it.
        await asyncio.gather(*dead_letters)
        await self.changelog.write(writes)
        for entries in writes.values():
            self.reader.written(entries)
        if self.overlay is overlay:
            self.overlay = {}  # in the store now; never serve it after a rebalance
        for partition, stream_time in out.advanced.items():
            metrics.STREAM_TIME.labels(str(partition)).set(stream_time / 1000)
        for partition, waiting in out.waiting.items():
            metrics.TARGET_PENDING.labels(str(partition)).set(waiting)
        _count(out)

    def _entries(self, partition: int, pending: PendingWrites,
                 stream_time: int | None) -> list[tuple[str, Any]]:
        """The partition's entries in the crash-safe order, then deletions of the buckets
        that `stream_time` (the partition's new one, if it advanced) expired."""
        idx = self.index(partition)
        entries = list(pending.ordered(partition))
        for key, value in entries:
            if key.startswith(keys.BUCKET_PREFIX):
                idx.add_bucket(key, value)
        if stream_time is not None:
            entries.extend((key, None) for key in idx.pop_expired(stream_time - self.cfg.horizon_ms))
        entries.extend((key, None) for key in self.stale.pop(partition, ()))
        return entries

    async def _await_alerts(self, sent: list[tuple[dict[str, Any], Any]],
                            fetched_at: float | None) -> None:
        """Wait for the broker's acknowledgement of each alert produced, sending it again
        while the broker is unavailable: the customer state that records a turn is written
        only after."""
        for alert, fut in sent:
            async def again(alert: dict[str, Any] = alert) -> Any:
                return await (await self._produce_alert(alert))

            await until_acknowledged(again, f"alert {alert['alert_id']}", kind="alert",
                                     topic=self.topics.alerts, first=fut)
            metrics.ALERTS.labels(alert["kind"], alert.get("program", "nps"),
                                  alert.get("priority") or "none").inc()
            metrics.alert_acknowledged(alert, fetched_at)

    async def _produce_alert(self, alert: dict[str, Any]) -> Any:
        """Hand one alert to the producer, fitted to the alert topic's max.message.bytes
        (`fitted_alert`); returns the future of the broker's answer."""
        headers = cloudevent_headers(alert, source=self.source)
        _, value = fitted_alert(alert, headers, self.limits.of(self.topics.alerts))
        return await _handed_over(self.alerts, key=alert_key(alert), value=value,
                                  headers=headers)

    async def _send_report(self, partition: int, value: bytes) -> Any:
        return await (await _handed_over(self.reports, key=None, value=value,
                                         partition=partition))

    async def _dead_letter(self, rejection: Rejection, msg: Any, now_ms: int) -> None:
        # The key is capped like the copy in the document, and the copy of the payload cut
        # to the topic's max.message.bytes, so the record always fits.
        key, value = fitted_dead_letter(rejection, msg, now_ms,
                                        self.limits.of(self.topics.deadletter))
        fut = await _handed_over(self.deadletters, key=key, value=value)
        # Not awaited here (a stream of garbage must not wait a round trip per message); the
        # batch is complete only once every dead letter is acknowledged (`_complete`).
        self.pending.append(asyncio.ensure_future(until_acknowledged(
            lambda: self._send_dead_letter(key, value), "dead letter", kind="deadletter",
            topic=self.topics.deadletter, first=fut)))
        metrics.DEADLETTERS.labels(rejection.code.value).inc()

    async def _send_dead_letter(self, key: bytes | None, value: bytes) -> Any:
        return await (await _handed_over(self.deadletters, key=key, value=value))


class _Topic:
    """An output topic, written through Faust's aiokafka producer itself, as the state is
    (`cxstream.worker.changelog`). Faust's `topic.send` wraps the same producer call in message
    objects, callbacks and sensors, which cost CPU on every alert and dead letter for nothing
    cxstream uses. Partitioned the same way, by the key (aiokafka's default partitioner)."""

    def __init__(self, app: faust.App, name: str) -> None:
        self.app, self.name = app, name

    async def send(self, *, key: bytes | None, value: bytes,
                   headers: list[tuple[str, bytes]] | None = None,
                   partition: int | None = None) -> asyncio.Future[Any]:
        """Hand the record to the producer (to `partition`, else the key's); returns the
        future of the broker's answer."""
        return await aiokafka_producer(self.app).send(self.name, value, key=key,
                                                      headers=headers, partition=partition)


async def _handed_over(topic: Any, **record: Any) -> asyncio.Future[Any]:
    """Hand a record to the producer (`_Topic.send`); returns the future of the
    broker's answer. A failure to hand it over (the broker unreachable) comes back as a
    failed future, so every caller retries it like a failed answer (`until_acknowledged`)
    instead of failing the batch, which would stop the consumer."""
    try:
        return await topic.send(**record)
    except KafkaError as exc:
        failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        failed.set_exception(exc)
        return failed


def target_config(settings: Settings, programs: Any) -> TargetConfig | None:
    """The segment checks the worker makes: targets (`CXSTREAM_TARGET_WINDOWS`, the
    registry's programs with a `target`) and trends (`CXSTREAM_TREND_*`); None when there
    is neither."""
    with_target = tuple(p for p in programs if p.target is not None)
    windows = tuple(w for w in settings.windows if w.name in settings.target_windows)
    trends = tuple(w for w in settings.windows if w.name in settings.trend_windows)
    if not (with_target and windows) and not trends:
        return None
    return TargetConfig(windows=windows, every_ms=settings.check_every,
                        settle_ms=settings.check_settle, min_responses=settings.min_responses,
                        programs=with_target, partitions=settings.partitions, trends=trends,
                        trend_level=settings.trend_level,
                        trend_min_responses=settings.trend_min_responses)


def _failed(msg: Any, exc: Exception) -> None:
    """Log a record whose planning raised (it is dead-lettered as a processing error)."""
    # Type only at ERROR: the message and traceback may quote customer data (DEBUG only).
    log.error("processing %s[%d]@%d failed: %s (dead-lettered)", msg.topic, msg.partition,
              msg.offset, type(exc).__name__)
    log.debug("details of the processing error", exc_info=exc)


def _count(out: Planned) -> None:
    """Add a batch's metric increments, once per label set."""
    for (kind, outcome), n in out.events.items():
        metrics.EVENTS.labels(kind, outcome).inc(n)
    for (survey, program, cat), n in out.responses.items():
        metrics.RESPONSES.labels(survey, program, cat).inc(n)
    for dim, n in out.folds.items():
        metrics.SEGMENT_FOLDS.labels(dim).inc(n)
    for outcome, n in out.checks.items():
        metrics.CHECK_REPORTS.labels(outcome).inc(n)


def register(app: faust.App, settings: Settings, state: faust.Table) -> Processor:
    """Subscribe `app` to the input topics, with their records going to a Processor in
    batches; returns the Processor (used by the web layer)."""
    topics = Topics(settings.topic_prefix)
    processor = Processor(app, settings, state)
    inputs = app.topic(topics.surveys, topics.interactions, topics.customers,
                       processor.reports_topic, key_serializer="raw", value_serializer="raw")
    # The consumer class must be in place before Faust creates the consumer (at start).
    app.transport.Consumer = batching_consumer(inputs.topics, processor.process)
    app.topics.add(inputs)  # subscribed like an agent's topic: assigned with the changelog

    @app.on_partitions_revoked.connect
    async def on_revoked(app: faust.App, revoked: set[TP], **kwargs: Any) -> None:
        processor.forget({tp.partition for tp in revoked if tp.topic == topics.surveys})

    @app.on_partitions_assigned.connect
    async def limits_on_assigned(app: faust.App, assigned: set[TP], **kwargs: Any) -> None:
        await processor.read_limits()  # before any input of the assignment is processed

    @app.on_partitions_assigned.connect
    async def on_assigned(app: faust.App, assigned: set[TP], **kwargs: Any) -> None:
        # `cxstream worker` checked the topics before starting; partitions added to one
        # while the workers run reach them as a rebalance, and a worker started some other
        # way never checked. The error crashes the app (Faust), which stops the worker.
        names = (*processor.kinds, state_changelog(settings), processor.reports_topic)
        counts = {name: app.consumer.topic_partitions(name) for name in names}
        if all(counts[name] is not None for name in processor.kinds):
            try:
                check_copartitioned(settings, counts, internal=True)
            except TopicError as exc:
                log.error("stopping the worker: %s", exc)
                raise

    return processor
