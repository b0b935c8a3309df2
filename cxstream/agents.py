"""The processor agent: reads input messages, asks the core for a plan, carries it out.

One agent consumes the three co-partitioned input topics with concurrency 1, so everything
about one customer happens in order, and all state of input partition *p* is written to
changelog partition *p* (see `cxstream.core.step` for why that makes replays exact).
No business rule lives here.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Sequence
from typing import Any

import faust
import orjson
from aiokafka.errors import KafkaError
from faust.streams import _current_event
from faust.types import TP

from cxstream import metrics
from cxstream.core import keys
from cxstream.core.batch import PendingWrites
from cxstream.core.alert import cloudevent_headers
from cxstream.core.deadletter import MAX_KEY_BYTES, dead_letter, processing_error
from cxstream.core.errors import Rejection
from cxstream.core.expiry import ExpiryIndex
from cxstream.core.step import StepConfig, plan
from cxstream.settings import Settings
from cxstream.topics import Topics

log = logging.getLogger(__name__)

BUCKET_PREFIX = keys.BUCKET + "|"


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
            for key in list(self.state.keys()):
                if key.startswith(prefix):
                    _, res, start, segment = keys.parse_bucket_key(key)
                    idx.add(key, segment, start + res)
        return idx

    def forget(self, partitions: set[int]) -> None:
        for p in partitions:
            self.indexes.pop(p, None)
            try:
                metrics.STREAM_TIME.remove(str(p))  # never export a stale partition
            except KeyError:
                pass

    # -- per batch ------------------------------------------------------------------------
    async def handle(self, event: faust.EventT) -> list[asyncio.Future[None]]:
        """One message on its own (see `handle_batch`)."""
        return (await self.handle_batch([event]))[0]

    async def handle_batch(self, events: Sequence[faust.EventT]) -> list[list[asyncio.Future[None]]]:
        """Plan every message in order against the batch's pending writes, send the alerts
        and wait for the broker's acknowledgements, then write the state, each key once (see
        `cxstream.core.batch` for why the result is the same as one message at a time, also
        after a crash). Returns, per message, the dead-letter confirmations its
        acknowledgement must wait for."""
        now_ms = int(time.time() * 1000)
        pending = PendingWrites(self.state)
        alerts: list[tuple[dict[str, Any], float | None]] = []
        confirmations: list[list[asyncio.Future[None]]] = []
        last_of: dict[int, faust.EventT] = {}
        advanced: dict[int, int] = {}
        for event in events:
            msg = event.message
            last_of[msg.partition] = event
            await self._plan_one(msg, now_ms, pending, alerts, advanced)
            confirmations.append(self.take_pending())
        await self._send_alerts(alerts)
        for partition in pending.partitions():
            self._write(partition, last_of[partition], pending, advanced.get(partition))
        for partition, stream_time in advanced.items():
            metrics.STREAM_TIME.labels(str(partition)).set(stream_time / 1000)
        return confirmations

    async def _plan_one(self, msg: Any, now_ms: int, pending: PendingWrites,
                        alerts: list[tuple[dict[str, Any], float | None]],
                        advanced: dict[int, int]) -> None:
        kind = self.kinds[msg.topic]
        try:
            p = plan(kind, pending, self.cfg, partition=msg.partition, offset=msg.offset,
                     key=msg.key, value=msg.value, now_ms=now_ms)
        except Exception as exc:  # noqa: BLE001 - one bad event must never stop the stream
            # Type only at ERROR: the message and traceback may quote customer data (DEBUG only).
            log.error("processing %s[%d]@%d failed: %s (dead-lettered)", msg.topic,
                      msg.partition, msg.offset, type(exc).__name__)
            log.debug("details of the processing error", exc_info=exc)
            await self._dead_letter(processing_error(exc), msg, now_ms)
            metrics.EVENTS.labels(kind, "deadlettered").inc()
            return
        metrics.EVENTS.labels(kind, p.outcome).inc()
        if p.rejection is not None:
            await self._dead_letter(p.rejection, msg, now_ms)
            return
        for key, value in (*p.before_alert, *p.after_alert):
            pending.put(msg.partition, key, value)
        if p.alert is not None:
            alerts.append((p.alert, getattr(msg, "time_in", None)))
        if p.outcome == "accepted" and p.survey is not None:
            metrics.RESPONSES.labels(p.survey, p.category or "none").inc()
            for dim in p.folded:
                metrics.SEGMENT_FOLDS.labels(dim).inc()
        if p.stream_time is not None:
            advanced[msg.partition] = p.stream_time

    def _write(self, partition: int, event: faust.EventT, pending: PendingWrites,
               stream_time: int | None) -> None:
        """Write the partition's entries to the table, in the crash-safe order, then delete
        the buckets that `stream_time` (the partition's new one, if it advanced) expired.
        Faust sends a table write to the changelog partition of the *current event*, so it is
        set to one of this partition's events."""
        table = self.state
        idx = self.index(partition)
        token = _current_event.set(weakref.ref(event))
        try:
            for key, value in pending.ordered(partition):
                table[key] = value
                if key.startswith(BUCKET_PREFIX) and key not in idx:
                    _, res, start, segment = keys.parse_bucket_key(key)
                    idx.add(key, segment, start + res)
            if stream_time is not None:
                for key in idx.pop_expired(stream_time - self.cfg.horizon_ms):
                    del table[key]
        finally:
            _current_event.reset(token)

    async def _send_alerts(self, alerts: list[tuple[dict[str, Any], float | None]]) -> None:
        """Produce the alerts (in order) and wait for the broker's acknowledgement of each,
        sending again while the broker is unavailable: the customer state that records a turn
        is written only after. `received`: when the worker fetched the message
        (`time.monotonic()`, Faust's time_in)."""
        sent = [(alert, received, await self._produce_alert(alert)) for alert, received in alerts]
        for alert, received, fut in sent:
            delay = 0.5
            while True:
                try:
                    await fut
                    break
                except KafkaError as exc:
                    log.warning("alert %s not acknowledged (%s); retrying in %.1fs",
                                alert["alert_id"], type(exc).__name__, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
                    fut = await self._produce_alert(alert)
            metrics.ALERTS.labels(alert["kind"]).inc()
            metrics.alert_acknowledged(alert, received)

    async def _produce_alert(self, alert: dict[str, Any]) -> Any:
        """Hand one alert to the producer; returns the future of the broker's answer (a
        failure to hand it over is returned as a failed future, retried by the caller)."""
        try:
            return await self.alerts.send(key=alert["customer_id"].encode(),
                                          value=orjson.dumps(alert),
                                          headers=cloudevent_headers(alert, source=self.source))
        except KafkaError as exc:
            failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            return failed

    async def _dead_letter(self, rejection: Rejection, msg: Any, now_ms: int) -> None:
        doc = dead_letter(rejection, topic=msg.topic, partition=msg.partition, offset=msg.offset,
                          key=msg.key, payload=msg.value, now_ms=now_ms)
        # Buffered: Faust flushes the producer before it commits the input offset. The key is
        # capped like the copy in the document, so the record always fits in a request.
        key = msg.key if msg.key is None else msg.key[:MAX_KEY_BYTES]
        value = orjson.dumps(doc)
        fut = await self.deadletters.send(key=key, value=value)
        # Not awaited here (a stream of garbage must not wait a round trip per message), but
        # the input message is acknowledged only once this is confirmed (see `register`): a
        # send that fails later must never let the commit pass a message it lost.
        self.pending.append(asyncio.ensure_future(self._confirm(fut, key, value)))
        metrics.DEADLETTERS.labels(rejection.code.value).inc()

    async def _confirm(self, fut: Any, key: bytes | None, value: bytes) -> None:
        """Wait for the broker to acknowledge a dead letter; send it again until it does."""
        delay = 0.5
        while True:
            try:
                await fut
                return
            except KafkaError as exc:
                log.warning("dead letter not acknowledged (%s); sending it again in %.1fs",
                            type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                fut = await self.deadletters.send(key=key, value=value)

    def take_pending(self) -> list[asyncio.Future[None]]:
        """Confirmations the current message's acknowledgement must wait for."""
        pending, self.pending = self.pending, []
        return pending


async def _ack_when_confirmed(stream: faust.StreamT, event: faust.EventT,
                              pending: list[asyncio.Future[None]]) -> None:
    # Faust commits only the contiguous run of acknowledged offsets, so acknowledging this
    # message late holds the commit at it until its dead letter is safely written.
    await asyncio.gather(*pending)
    await stream.ack(event)


def register(app: faust.App, settings: Settings, state: faust.Table) -> Processor:
    """Declare the processor agent on `app`; returns the Processor (used by the web layer)."""
    topics = Topics(settings.topic_prefix)
    processor = Processor(app, settings, state)
    inputs = app.topic(topics.surveys, topics.interactions, topics.customers,
                       key_serializer="raw", value_serializer="raw")

    @app.agent(inputs, name=f"{settings.group_id}.process", concurrency=1)
    async def process(stream: faust.StreamT) -> None:
        # In batches (one table write per key per batch, see `Processor.handle_batch`), each
        # message acknowledged only once its batch is handled. `noack_take`, not `take`: `take`
        # acknowledges the batch in hand when the agent is cancelled (shutdown, rebalance),
        # committing half-carried-out plans (e.g. the alert sent, the customer state not yet
        # written); unacknowledged, they are read again and complete (idempotent by offset).
        async for events in stream.noack_take(settings.batch_size, within=settings.batch_wait):
            confirmations = await processor.handle_batch(events)
            for event, pending in zip(events, confirmations):
                if pending:
                    asyncio.ensure_future(_ack_when_confirmed(stream, event, pending))
                else:
                    await stream.ack(event)

    @app.on_partitions_revoked.connect
    async def on_revoked(app: faust.App, revoked: set[TP], **kwargs: Any) -> None:
        processor.forget({tp.partition for tp in revoked if tp.topic == topics.surveys})

    return processor
