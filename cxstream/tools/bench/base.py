"""What every Kafka phase of the bench shares: the `Run` (one broker, one topic prefix, one
data set and the worker subprocess it may hold), `BenchError`, and the small helpers the
phases use to talk to Kafka and to the worker (partitions and end offsets, waiting for a
group's commits, polling a condition, fetching the worker's HTTP endpoints and metrics) and
to turn a count and two wall times into a rate.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from cxstream.tools.progress import Progress
from cxstream.tools.simulator import Simulator


class BenchError(RuntimeError):
    """A phase could not measure; the message says why (and where the log is)."""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rocksdb_available() -> bool:
    try:
        import rocksdict  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    data_dir: Path
    headers: dict[str, str]


@dataclass
class Run:
    """One bench run against one broker: its own topic prefix, data and subprocesses."""

    settings: Any  # cxstream.config.settings.Settings with the run's topic prefix
    env: dict[str, str]  # environment for subprocesses (CXSTREAM_BROKER set)
    workdir: Path
    events: int
    customers: int
    seed: int
    sim: Simulator | None = None
    responses: int = 0
    customers_with_events: int = 0
    end: dict[Any, int] = field(default_factory=dict)  # input TopicPartition -> end offset
    worker: _Worker | None = None
    cx_rate: float | None = None

    @property
    def prefix(self) -> str:
        return self.settings.topic_prefix

    @property
    def inputs(self) -> list[str]:
        from cxstream.kafka.topics import Topics

        t = Topics(self.prefix)
        return [t.surveys, t.interactions, t.customers]

    def timeout_s(self) -> float:
        return 120.0 + self.events / 200

    def security(self) -> dict[str, Any]:
        from cxstream.kafka.security import client_kwargs

        return client_kwargs(self.settings)


async def _partitions(run: Run, topics: Iterable[str]) -> list[Any]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=run.settings.bootstrap, **run.security())
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # noqa: SLF001 - fresh topic metadata
        return [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
    finally:
        await consumer.stop()


async def _end_offsets(run: Run, tps: list[Any]) -> dict[Any, int]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=run.settings.bootstrap, **run.security())
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


def _rate(events: int, first: float, last: float) -> dict[str, Any]:
    seconds = max(last - first, 1e-6)
    return {"events": events, "seconds": seconds, "events_per_s": events / seconds}


async def _committed_done(run: Run, group: str, progress: Progress,
                          alive: Callable[[], str | None], what: str) -> float:
    """Poll `group`'s committed offsets until they reach the input end offsets; returns the
    wall time when they did. `alive()` returns an error text once the process died."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=run.settings.bootstrap, **run.security())
    await admin.start()
    try:
        deadline = time.time() + run.timeout_s()
        while True:
            committed = await admin.list_consumer_group_offsets(group)
            done = 0
            for tp, end in run.end.items():
                meta = committed.get(tp)
                done += min(meta.offset, end) if meta is not None and meta.offset > 0 else 0
            progress.update(done - progress.done)
            if done >= run.events:
                return time.time()
            problem = alive()
            if problem:
                raise BenchError(problem)
            if time.time() > deadline:
                raise BenchError(f"{what}: group {group} committed {done} of {run.events} in time")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def _wait_until(check: Callable[[], Any], timeout_s: float, what: str,
                      alive: Callable[[], str | None], interval_s: float = 0.1) -> Any:
    deadline = time.time() + timeout_s
    while True:
        got = await check()
        if got:
            return got
        problem = alive()
        if problem:
            raise BenchError(problem)
        if time.time() > deadline:
            raise BenchError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        await asyncio.sleep(interval_s)


async def _get(w: _Worker, path: str) -> tuple[int, str] | None:
    """Status and body of the worker's `path`; None when it does not answer."""
    import aiohttp

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2),
                                         headers=w.headers) as s:
            async with s.get(f"{w.url}{path}") as r:
                return r.status, await r.text()
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
        return None


async def _scrape(w: _Worker) -> dict[str, float] | None:
    """The worker's /metrics, each sample name summed over its labels; None if unanswered."""
    from prometheus_client.parser import text_string_to_metric_families

    got = await _get(w, "/metrics")
    if got is None or got[0] != 200:
        return None
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(got[1]):
        for sample in fam.samples:
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


async def _ready(w: _Worker) -> bool:
    got = await _get(w, "/readyz")
    return got is not None and got[0] == 200


async def _events_total(w: _Worker) -> float | None:
    m = await _scrape(w)
    return None if m is None else m.get("cxstream_events_total", 0.0)
