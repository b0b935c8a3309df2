"""The processor: takes the input records of each fetch, asks the core for a plan per
record, carries the plans out.

One processor per worker handles the three co-partitioned input topics one batch at a time
(`cxstream.batching` hands it the records below Faust's per-message streams), so
everything about one customer happens in order, and all state of input partition *p* is
written to changelog partition *p* (see `cxstream.core.step` for why that makes replays
exact). No business rule lives here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any, Callable

import faust
import orjson
from aiokafka.errors import KafkaError
from faust.types import TP

from cxstream import metrics
from cxstream.batching import Batch, batching_consumer
from cxstream.changelog import ChangelogWriter, partition_databases, stored_value
from cxstream.core import keys
from cxstream.core.alert import cloudevent_headers
from cxstream.core.batch import PendingWrites
from cxstream.core.deadletter import MAX_KEY_BYTES, dead_letter, processing_error
from cxstream.core.errors import Rejection
from cxstream.core.expiry import ExpiryIndex
from cxstream.core.step import StepConfig, plan
from cxstream.core.windows import DAY
from cxstream.retry import until_acknowledged
from cxstream.settings import Settings
from cxstream.topics import Topics

log = logging.getLogger(__name__)

#: Marks a key a dict does not hold (None is a value: a deletion).
_ABSENT: Any = object()


class Processor:
    """Carries out plans against the state table and the output topics."""

    def __init__(self, app: faust.App, settings: Settings, state: faust.Table) -> None:
        self.app = app
        self.settings = settings
        self.state = state
        self.topics = Topics(settings.topic_prefix)
        self.kinds = {
            self.topics.surveys: "surveys",
            self.topics.interactions: "interactions",
            self.topics.customers: "customers",
        }
        self.cfg = StepConfig(
            horizon_ms=settings.horizon_ms,
            dimensions=settings.segment_dimensions,
            value_cap=settings.segment_value_cap,
            journey_length=settings.journey_length,
        )
        raw = {"key_serializer": "raw", "value_serializer": "raw"}
        self.alerts = app.topic(self.topics.alerts, **raw)
        self.deadletters = app.topic(self.topics.deadletter, **raw)
        self.indexes: dict[int, ExpiryIndex] = {}
        self.pending: list[asyncio.Future[None]] = []
        self.reader = _PartitionReader(state, self.indexes)
        #: Writes of the batch being completed, until they are in the store (`process`).
        self.overlay: dict[str, Any] = {}
        self.completing: asyncio.Future[None] | None = None
        self.changelog = ChangelogWriter(app, state)
        self.source = f"cxstream/{settings.group_id}"

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
            # The store, and the buckets of the batch still being written (`overlay`). Only
            # day entries are read: the index takes the segments from them.
            get = self.stored(partition)
            stored = [key for key in self.state.keys() if key not in self.overlay]
            written = [key for key, value in self.overlay.items() if value is not None]
            for key in (*stored, *written):
                if key.startswith(prefix):
                    try:
                        _, res, _ = keys.parse_bucket_key(key)
                    except ValueError:
                        raise RuntimeError(
                            f"the state of partition {partition} holds segment buckets of an "
                            "earlier cxstream layout (one entry per segment), which this release "
                            "does not read: see 'State layout' in the README (stop every worker, "
                            "delete the state changelog topic and each worker's CXSTREAM_DATA_DIR, "
                            "start again)") from None
                    if res == DAY:
                        idx.add_bucket(key, self.overlay[key] if key in self.overlay else get(key))
                    else:
                        idx.add_bucket(key, None)
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

    def forget(self, partitions: set[int]) -> None:
        """Called at every rebalance: what was read or indexed may change hands meanwhile."""
        self.reader.clear()
        for p in partitions:
            self.indexes.pop(p, None)
            try:
                metrics.STREAM_TIME.remove(str(p))  # never export a stale partition
            except KeyError:
                pass

    # -- per batch ------------------------------------------------------------------------
    async def process(self, batch: Batch, fetched_at: float | None = None) -> asyncio.Future[None]:
        """Plan the input records of one fetch (see `cxstream.batching`), partition by
        partition and each in offset order, against the batch's pending writes; returns the
        rest of the batch's work, under way: send the alerts and wait for the broker's
        acknowledgements, then write the state, each key once, changelog first (see
        `cxstream.core.batch` for why the result is the same as one message at a time, also
        after a crash), and wait for the dead letters. The records may be acknowledged once
        it is done. `fetched_at`: `time.monotonic()` when the records were fetched.

        Why split: the broker's acknowledgements take milliseconds; the next batch is planned
        meanwhile, reading this one's writes from `overlay` until they are in the store.
        Batches complete one after another, in order."""
        now_ms = int(time.time() * 1000)
        tally = _Tally()
        pending = PendingWrites(_Overlay(self.overlay, self.reader))
        alerts: list[dict[str, Any]] = []
        advanced: dict[int, int] = {}
        rejected: list[tuple[Rejection, Any]] = []
        for tp, records in batch.items():
            kind = self.kinds[tp.topic]
            self.reader.partition = tp.partition
            for record in records:
                self._plan_one(kind, record, now_ms, pending, alerts, advanced, tally, rejected)
        for rejection, record in rejected:
            await self._dead_letter(rejection, record, now_ms)
        writes = {p: self._entries(p, pending, advanced.get(p)) for p in pending.partitions()}
        overlay = {k: v for entries in writes.values() for k, v in entries}
        self.overlay = overlay
        dead_letters, self.pending = self.pending, []
        done = asyncio.ensure_future(self._complete(
            self.completing, alerts, writes, overlay, advanced, tally, dead_letters, fetched_at))
        self.completing = done
        return done

    async def _complete(self, previous: asyncio.Future[None] | None, alerts: list[dict[str, Any]],
                        writes: dict[int, list[tuple[str, Any]]], overlay: dict[str, Any],
                        advanced: dict[int, int], tally: _Tally,
                        dead_letters: list[asyncio.Future[None]], fetched_at: float | None) -> None:
        sent = [(alert, await self._produce_alert(alert)) for alert in alerts]
        if previous is not None:
            await previous  # its state first: the changelog keeps the batches' order
        await self._await_alerts(sent, fetched_at)
        await self.changelog.write(writes)
        for entries in writes.values():
            self.reader.written(entries)
        if self.overlay is overlay:
            self.overlay = {}  # in the store now; never serve it after a rebalance
        for partition, stream_time in advanced.items():
            metrics.STREAM_TIME.labels(str(partition)).set(stream_time / 1000)
        tally.flush()
        await asyncio.gather(*dead_letters)

    def _plan_one(self, kind: str, msg: Any, now_ms: int, pending: PendingWrites,
                  alerts: list[dict[str, Any]], advanced: dict[int, int], tally: _Tally,
                  rejected: list[tuple[Rejection, Any]]) -> None:
        """Plan one record into the batch's pending writes and alerts; what it rejects goes
        to `rejected`, dead-lettered once the batch is planned (no coroutine per record)."""
        try:
            p = plan(kind, pending, self.cfg, partition=msg.partition, offset=msg.offset,
                     key=msg.key, value=msg.value, now_ms=now_ms)
        except Exception as exc:  # noqa: BLE001 - one bad event must never stop the stream
            # Type only at ERROR: the message and traceback may quote customer data (DEBUG only).
            log.error("processing %s[%d]@%d failed: %s (dead-lettered)", msg.topic,
                      msg.partition, msg.offset, type(exc).__name__)
            log.debug("details of the processing error", exc_info=exc)
            rejected.append((processing_error(exc), msg))
            tally.events[kind, "deadlettered"] += 1
            return
        tally.events[kind, p.outcome] += 1
        if p.rejection is not None:
            rejected.append((p.rejection, msg))
            return
        partition = msg.partition
        if p.before_alert:  # empty for interactions, most of the stream
            pending.put(partition, p.before_alert)
        pending.put(partition, p.after_alert)
        if p.alert is not None:
            alerts.append(p.alert)
        if p.outcome == "accepted" and p.survey is not None:
            tally.responses[p.survey, p.category or "none"] += 1
            for dim in p.folded:
                tally.folds[dim] += 1
        if p.stream_time is not None:
            advanced[partition] = p.stream_time

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
        return entries

    async def _await_alerts(self, sent: list[tuple[dict[str, Any], Any]],
                            fetched_at: float | None) -> None:
        """Wait for the broker's acknowledgement of each alert produced, sending it again
        while the broker is unavailable: the customer state that records a turn is written
        only after."""
        for alert, fut in sent:
            async def again(alert: dict[str, Any] = alert) -> Any:
                return await (await self._produce_alert(alert))

            await until_acknowledged(again, f"alert {alert['alert_id']}", first=fut)
            metrics.ALERTS.labels(alert["kind"]).inc()
            metrics.alert_acknowledged(alert, fetched_at)

    async def _produce_alert(self, alert: dict[str, Any]) -> Any:
        """Hand one alert to the producer; returns the future of the broker's answer."""
        return await _handed_over(self.alerts, key=alert["customer_id"].encode(),
                                  value=orjson.dumps(alert),
                                  headers=cloudevent_headers(alert, source=self.source))

    async def _dead_letter(self, rejection: Rejection, msg: Any, now_ms: int) -> None:
        doc = dead_letter(rejection, topic=msg.topic, partition=msg.partition, offset=msg.offset,
                          key=msg.key, payload=msg.value, now_ms=now_ms)
        # The key is capped like the copy in the document, so the record always fits in a
        # request.
        key = msg.key if msg.key is None else msg.key[:MAX_KEY_BYTES]
        value = orjson.dumps(doc)
        fut = await _handed_over(self.deadletters, key=key, value=value)
        # Not awaited here (a stream of garbage must not wait a round trip per message); the
        # batch is complete only once every dead letter is acknowledged (`_complete`).
        self.pending.append(asyncio.ensure_future(until_acknowledged(
            lambda: self._send_dead_letter(key, value), "dead letter", first=fut)))
        metrics.DEADLETTERS.labels(rejection.code.value).inc()

    async def _send_dead_letter(self, key: bytes | None, value: bytes) -> Any:
        return await (await _handed_over(self.deadletters, key=key, value=value))


async def _handed_over(topic: Any, **record: Any) -> asyncio.Future[Any]:
    """Hand a record to the producer (Faust's `topic.send`); returns the future of the
    broker's answer. A failure to hand it over (the broker unreachable) comes back as a
    failed future, so every caller retries it like a failed answer (`until_acknowledged`)
    instead of failing the batch, which would stop the consumer."""
    try:
        return await topic.send(**record)
    except KafkaError as exc:
        failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        failed.set_exception(exc)
        return failed


class _Tally:
    """Metric increments of a batch, added once per label set (a labelled Prometheus
    increment costs about as much as planning a message's cheap parts)."""

    __slots__ = ("events", "responses", "folds")

    def __init__(self) -> None:
        self.events: Counter[tuple[str, str]] = Counter()
        self.responses: Counter[tuple[str, str]] = Counter()
        self.folds: Counter[str] = Counter()

    def flush(self) -> None:
        for (kind, outcome), n in self.events.items():
            metrics.EVENTS.labels(kind, outcome).inc(n)
        for (survey, cat), n in self.responses.items():
            metrics.RESPONSES.labels(survey, cat).inc(n)
        for dim, n in self.folds.items():
            metrics.SEGMENT_FOLDS.labels(dim).inc(n)


class _Overlay:
    """The previous batch's writes (None: deleted) over the store. Looks in the reader's
    memory (`_PartitionReader.memory`) itself: most reads end there, one call earlier."""

    __slots__ = ("top", "memory", "store")

    def __init__(self, top: dict[str, Any], store: _PartitionReader) -> None:
        self.top, self.memory, self.store = top, store.memory, store

    def get(self, key: str, default: Any = None) -> Any:
        value = self.top.get(key, _ABSENT)
        if value is _ABSENT:
            value = self.memory.get(key, _ABSENT)
            if value is _ABSENT:
                return self.store.get(key, default)
        return default if value is None else value


class _PartitionReader:
    """Reads the state table's local store for the partition being planned, bypassing the
    table (Faust's decoding and its current-event lookup cost more than the read itself).

    The memory store is one dict; the RocksDB store keeps one database per partition,
    holding keys and values as JSON (Faust's codec, which orjson reads and writes byte for
    byte the same). With RocksDB, the entries that carry their partition in the key (segment
    buckets, caps, stream time: few, and read by most messages) are also kept decoded in
    memory, written through by `written` and dropped at every rebalance (`clear`); customer
    records (one per customer, most read once a batch) are not. Values read are never
    mutated (see `cxstream.core.journey`).

    A bucket key that the partition's expiry index does not hold is not in the store (the
    index holds every stored bucket of an owned partition, see `Processor.index`), so it is
    answered without a read: most responses create new minute buckets, and the reads of
    keys that do not exist were a tenth of the worker's time (and filled the cache)."""

    #: Most entries kept decoded (RocksDB); past it, the cache starts over.
    CACHE_MAX = 20_000

    def __init__(self, table: faust.Table, indexes: dict[int, ExpiryIndex]) -> None:
        self.partition = 0
        self._indexes = indexes
        self._db_for_partition = partition_databases(table)
        store: Any = getattr(table, "data", table)
        self._dict = None if self._db_for_partition is not None else getattr(store, "data", store)
        self._cache: dict[str, Any] = {}
        #: What `get` answers from memory: the memory store itself, or the RocksDB cache.
        self.memory: dict[str, Any] = self._cache if self._dict is None else self._dict

    def get(self, key: str, default: Any = None) -> Any:
        if self._dict is not None:
            return self._dict.get(key, default)
        cache = self._cache
        if key in cache:
            value = cache[key]
        else:
            if key.startswith(keys.BUCKET_PREFIX):
                index = self._indexes.get(self.partition)
                if index is not None and key not in index:
                    return default
            value = stored_value(self._db_for_partition(self.partition), key)
            if not key.startswith(keys.CUSTOMER_PREFIX):
                if len(cache) >= self.CACHE_MAX:
                    cache.clear()
                cache[key] = value
        return default if value is None else value

    def written(self, entries: list[tuple[str, Any]]) -> None:
        """Entries now in the store (None: deleted)."""
        if self._dict is None:
            self._cache.update([item for item in entries
                                if not item[0].startswith(keys.CUSTOMER_PREFIX)])

    def clear(self) -> None:
        self._cache.clear()


def register(app: faust.App, settings: Settings, state: faust.Table) -> Processor:
    """Subscribe `app` to the input topics, with their records going to a Processor in
    batches; returns the Processor (used by the web layer)."""
    topics = Topics(settings.topic_prefix)
    processor = Processor(app, settings, state)
    inputs = app.topic(topics.surveys, topics.interactions, topics.customers,
                       key_serializer="raw", value_serializer="raw")
    # The consumer class must be in place before Faust creates the consumer (at start).
    app.transport.Consumer = batching_consumer(inputs.topics, processor.process)
    app.topics.add(inputs)  # subscribed like an agent's topic: assigned with the changelog

    @app.on_partitions_revoked.connect
    async def on_revoked(app: faust.App, revoked: set[TP], **kwargs: Any) -> None:
        processor.forget({tp.partition for tp in revoked if tp.topic == topics.surveys})

    return processor
