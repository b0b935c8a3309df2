"""The bench's `latency` phase: with the cxstream phase's worker still running, live events
at a fixed offered rate, and for each survey response the time from just before it is sent
to its alert arriving on the alert topic. Also holds what keeps the bench's own CPU out of
that measurement: the events made up before the clock starts (`_prepare_live`) and sent as
one record batch per partition and tick (`_Batches`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from cxstream.core.timefmt import format_rfc3339
from cxstream.tools.bench.base import (BenchError, Run, _committed_done, _end_offsets,
                                       _events_total, _partitions, _scrape)
from cxstream.tools.bench.report import latency_summary
from cxstream.tools.progress import Progress
from cxstream.tools.simulator import Simulator
from cxstream.worker.changelog import send_full

#: How often the latency phase sends what is due. Each event's clock starts when it is created,
#: so the tick adds nothing to the measured latency; but every tick is a produce request per
#: partition, so a shorter tick costs the bench's producer more CPU per event, taken from the
#: cores it shares with the worker and the broker.
SEND_TICK_S = 0.01


async def latency_phase(run: Run, seconds: float = 30.0, rate: float | None = None) -> dict[str, Any]:
    """Live events (occurred_at = now) at a fixed offered rate, half the measured cxstream rate
    unless given; latency = alert received on the alert topic − just before send() of its
    response (both clocks of this machine)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from cxstream.kafka.topics import Topics

    w, sim = run.worker, run.sim
    if w is None or sim is None or (rate is None and not run.cx_rate):
        raise BenchError("the latency phase needs the cxstream phase's worker and rate")
    if w.proc.poll() is not None:
        raise BenchError(f"the cxstream worker exited with {w.proc.returncode}; see {w.log}")
    offered = rate if rate is not None else run.cx_rate / 2  # type: ignore[operator]
    total = max(1, int(offered * seconds))
    alerts_topic = Topics(run.prefix).alerts
    consumer = AIOKafkaConsumer(bootstrap_servers=run.settings.bootstrap, enable_auto_commit=False,
                                group_id=None, fetch_max_wait_ms=5, isolation_level="read_committed",
                                **run.security())
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=run.settings.bootstrap, acks="all",
                                enable_idempotence=True, **run.security())
    await producer.start()
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    alerts = [0]
    stop = asyncio.Event()

    async def collect() -> None:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=50)
            now = time.time()
            for records in batch.values():
                for rec in records:
                    alerts[0] += 1
                    t = sent_at.get(orjson.loads(rec.value).get("survey_event_id"))
                    if t is not None:
                        latencies.append((now - t) * 1000)

    partitions = {t: sorted(tp.partition for tp in await _partitions(run, [t])) for t in run.inputs}
    events = _prepare_live(sim, total, partitions, run.prefix)
    progress = Progress(f"bench latency at {offered:,.0f}/s", total, unit="events")
    tps = await _partitions(run, [alerts_topic])
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)  # resolve "end" now, before anything is sent
    before = await _scrape(w) or {}
    collector = asyncio.create_task(collect())
    try:
        t0 = time.time()
        sent = 0
        pending = []
        while sent < total:
            due = min(total, int((time.time() - t0) * offered) + 1)
            batches = _Batches(producer)
            now = time.time()
            occurred = format_rfc3339(int(now * 1000)).encode()
            while sent < due:
                topic, partition, key, parts, survey_id = events[sent]
                events[sent] = None  # type: ignore[call-overload]  # sent: let it go
                if survey_id is not None:
                    sent_at[survey_id] = now
                pending.extend(await batches.add(topic, partition, key, occurred.join(parts)))
                sent += 1
            pending.extend(await batches.send())
            progress.update(due - progress.done)
            if len(pending) > 1000:
                await asyncio.gather(*pending)
                pending.clear()
            await asyncio.sleep(SEND_TICK_S)
        await asyncio.gather(*pending)
        send_s = time.time() - t0
        processed_at_send_end = (await _events_total(w) or 0.0) - (before.get("cxstream_events_total") or 0.0)
        # Let the worker finish: every input offset processed, then a moment for the alerts.
        tps_in = await _partitions(run, run.inputs)
        run.end = await _end_offsets(run, tps_in)
        run.events = sum(run.end.values())
        import io

        quiet = Progress("bench latency drain", run.events, stream=io.StringIO())
        drained = await _committed_done(
            run, run.settings.group_id, quiet,
            lambda: None if w.proc.poll() is None else f"worker died; see {w.log}", "latency drain")
        quiet.close()
        await asyncio.sleep(2.0)
        after = await _scrape(w) or {}
    finally:
        stop.set()
        await collector
        progress.close()
        await producer.stop()
        await consumer.stop()
    return {"offered_events_per_s": offered, "sent_events_per_s": total / send_s,
            "events": total, "responses": len(sent_at), "alerts": len(latencies),
            "alerts_on_topic": alerts[0],
            "seconds": send_s, **latency_summary(latencies),
            # Where the time goes: behind at the end of sending (events not yet handled), how long
            # the worker needed after the last send to commit everything, and the worker's own
            # mean from fetching a response to the broker acknowledging its alert.
            "backlog_at_send_end": total - processed_at_send_end,
            "drain_after_send_s": drained - (t0 + send_s),
            "worker_receipt_to_ack_mean_ms": _delta_mean(before, after,
                                                         "cxstream_alert_delay_from_receipt_seconds")}


#: `occurred_at` of the events `_prepare_live` makes up, replaced when they are sent.
_OCCURRED_MARK_MS = 978_307_200_001
_OCCURRED_MARK = format_rfc3339(_OCCURRED_MARK_MS).encode()  # 2001-01-01T00:00:00.001Z


def _prepare_live(sim: Simulator, total: int, partitions: dict[str, list[int]],
                  prefix: str) -> list[tuple[str, int, bytes, list[bytes], str | None]]:
    """The latency phase's events, made up before its clock starts: (topic, partition, key,
    the JSON value split where its `occurred_at` goes, the survey's event id or None).

    Why: making an event up while sending (the simulator, the murmur2 partitioner and the
    JSON encoding, in Python) costs the bench CPU per event during the measurement, on the
    cores the worker and the broker share, enough at the offered rates to slow the worker
    being measured. Partitions are chosen as the producer's default partitioner does
    (murmur2 of the key), so the inputs stay co-partitioned by customer."""
    from aiokafka.partitioner import DefaultPartitioner

    choose = DefaultPartitioner()
    progress = Progress("bench latency: preparing events", total, unit="events")
    events = []
    try:
        for i in range(total):
            short, doc = sim.event(_OCCURRED_MARK_MS)
            key, topic = doc["customer_id"].encode(), f"{prefix}{short}"
            parts = partitions[topic]
            events.append((topic, choose(key, parts, parts), key,
                           orjson.dumps(doc).split(_OCCURRED_MARK),
                           doc["event_id"] if short == "surveys" else None))
            if i % 10_000 == 9_999:
                progress.update(10_000)
        progress.update(total - progress.done)
    finally:
        progress.close()
    return events


class _Batches:
    """The records of one send tick, as one record batch per topic partition: what
    `producer.send` does per record (its partitioner, accumulator and a future each) costs the
    bench CPU on every event, on the cores it shares with the worker, enough to weigh on the
    worker's own processing being measured."""

    def __init__(self, producer: Any) -> None:
        self.producer = producer
        self.open: dict[tuple[str, int], Any] = {}

    async def add(self, topic: str, partition: int, key: bytes, value: bytes) -> list[Any]:
        """Add one record; returns the futures of batches that filled up meanwhile."""
        builder = self.open.get((topic, partition))
        if builder is None:
            builder = self.open[topic, partition] = self.producer.create_batch()
        if builder.append(key=key, value=value, timestamp=None) is not None:
            return []
        self.open[topic, partition], full = await send_full(self.producer, builder, topic,
                                                            partition, key, value)
        return [full]

    async def send(self) -> list[Any]:
        """Send every open batch; returns their futures."""
        futures = [await self.producer.send_batch(b, topic, partition=partition)
                   for (topic, partition), b in self.open.items()]
        self.open.clear()
        return futures


def _delta_mean(before: dict[str, float], after: dict[str, float], histogram: str) -> float | None:
    n = after.get(f"{histogram}_count", 0.0) - before.get(f"{histogram}_count", 0.0)
    total = after.get(f"{histogram}_sum", 0.0) - before.get(f"{histogram}_sum", 0.0)
    return total / n * 1000 if n > 0 else None
