"""`cxstream simulate`: drive the Simulator in real time, as a backfill, or into files.

The survey programs answered are those of `CXSTREAM_SURVEYS` (the same registry the worker
reads, so every answer is of a program it knows): without a file, or with the built-ins only,
the built-in mix (`cxstream.tools.simulator`).

In real time it may first send a recent past (`since`, the demo's): the events from then to
now, at the same rate, all at once; the traffic then goes on live from where they stop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from cxstream.config import surveys
from cxstream.core.programs import Registry
from cxstream.kafka.admin import ensure_topics
from cxstream.kafka.security import client_kwargs
from cxstream.tools.progress import Progress
from cxstream.config.settings import Settings
from cxstream.tools.simulator import Simulator
from cxstream.kafka.topics import Topics


async def simulate(settings: Settings, *, seed: int, customers: int, rate: float,
                   duration: float, backfill_days: float | None, output: Path | None,
                   stop: asyncio.Event | None = None, programs: Registry | None = None,
                   counts: dict[str, int] | None = None, since: int | None = None) -> str:
    """Returns a one-line summary of what was generated.

    `programs`: the registry whose programs are answered (default: `settings.surveys`'s).
    `counts`: filled in as messages go out (customers, surveys, interactions), for a caller
    that wants the figures while it runs or after an interruption. `since` (epoch ms, real
    time only): first the events from then until now at `rate`, the i-th at
    ``since + int(i * 1000 / rate)``, sent at once (the profiles are dated `since`)."""
    if programs is None:
        programs = surveys.registry(settings.surveys, settings.max_programs)
    sim = Simulator(seed=seed, customers=customers, programs=programs)
    now_ms = int(time.time() * 1000)
    if counts is None:
        counts = {}
    counts.update({"customers": 0, "surveys": 0, "interactions": 0})
    if backfill_days is not None:
        total = int(rate * duration) if duration > 0 else 10_000
        start = now_ms - int(backfill_days * 86_400_000)
        step = max(1, (now_ms - start) // max(total, 1))
        events = [sim.event(start + i * step) for i in range(total)]
        return await _emit(settings, output, [*sim.profiles(start), *events], counts)
    if output is not None:
        total = int(rate * duration)
        events = [sim.event(now_ms + int(i * 1000 / rate)) for i in range(total)]
        return await _emit(settings, output,
                           [*sim.profiles(now_ms), *events], counts)
    return await _live(settings, sim, rate, duration, counts, stop, since)


async def _emit(settings: Settings, output: Path | None, items: list, counts: dict) -> str:
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        files = {t: (output / f"{t}.jsonl").open("wb") for t in counts}
        try:
            for topic, doc in items:
                files[topic].write(orjson.dumps(doc) + b"\n")
                counts[topic] += 1
        finally:
            for f in files.values():
                f.close()
        return f"wrote {counts} to {output}"
    producer = await _producer(settings)
    topics = Topics(settings.topic_prefix)
    progress = Progress("simulate", len(items))
    try:
        for topic, doc in items:
            await producer.send(topics.input(topic), orjson.dumps(doc),
                                key=doc["customer_id"].encode())
            counts[topic] += 1
            progress.update()
        await producer.flush()
    finally:
        await producer.stop()
        progress.close()
    return f"sent {counts}"


async def _producer(settings: Settings) -> AIOKafkaProducer:
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=5, **client_kwargs(settings))
    await producer.start()
    return producer


def past_times(since: int, now_ms: int, rate: float) -> list[int]:
    """The event times of the past sent before the live traffic: from `since` until `now_ms`
    (excluded), `rate` per second."""
    times: list[int] = []
    while (at := since + int(len(times) * 1000 / rate)) < now_ms:
        times.append(at)
    return times


async def _live(settings: Settings, sim: Simulator, rate: float, duration: float,
                counts: dict, stop: asyncio.Event | None, since: int | None = None) -> str:
    producer = await _producer(settings)
    topics = Topics(settings.topic_prefix)
    now_ms = int(time.time() * 1000)
    past = past_times(since, now_ms, rate) if since is not None else []
    progress = Progress("simulate", len(past) + int(rate * duration) if duration > 0 else None,
                        unit="events")
    loop = asyncio.get_running_loop()
    try:
        for topic, doc in sim.profiles(now_ms if since is None else since):
            await producer.send(topics.input(topic), orjson.dumps(doc),
                                key=doc["customer_id"].encode())
            counts[topic] += 1
        for at in past:
            if stop and stop.is_set():
                break
            topic, doc = sim.event(at)
            await producer.send(topics.input(topic), orjson.dumps(doc),
                                key=doc["customer_id"].encode())
            counts[topic] += 1
            progress.update()
            if progress.done % 500 == 0:
                await asyncio.sleep(0)  # let the demo's view and alert reader run
        started = loop.time()
        sent = 0
        while (duration <= 0 or loop.time() - started < duration) and not (stop and stop.is_set()):
            due = int((loop.time() - started) * rate) - sent
            for _ in range(max(due, 0)):
                topic, doc = sim.event(int(time.time() * 1000))
                await producer.send(topics.input(topic), orjson.dumps(doc),
                                    key=doc["customer_id"].encode())
                counts[topic] += 1
                sent += 1
                progress.update()
            await asyncio.sleep(0.05)
        await producer.flush()
    finally:
        await producer.stop()
        progress.close()
    return f"sent {counts}"
