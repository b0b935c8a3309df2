"""Real worker processes and Kafka clients for integration tests (no mocks).

Each test gets its own topic prefix, so topics, consumer group and changelog never mix
between tests sharing the session's broker. Waits poll real state with a deadline; they
never sleep a fixed time and hope.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


@dataclass
class Worker:
    """One `cxstream worker` subprocess with its own web port."""

    bootstrap: str
    prefix: str
    data_dir: Path
    partitions: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"worker-{self.port}.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CXSTREAM_")}
        env.update({
            "CXSTREAM_BROKER": self.bootstrap,
            "CXSTREAM_TOPIC_PREFIX": self.prefix,
            "CXSTREAM_PARTITIONS": str(self.partitions),
            "CXSTREAM_WEB_PORT": str(self.port),
            "CXSTREAM_DATA_DIR": str(self.data_dir),
            "CXSTREAM_SESSION_TIMEOUT": "6",
            "CXSTREAM_LOG_LEVEL": "info",
            **self.extra_env,
        })
        return env

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "cxstream", "worker"], env=self.env(),
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    async with s.get(f"{self.url}/readyz") as r:
                        if r.status == 200:
                            return
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                await asyncio.sleep(0.3)
        raise AssertionError(f"worker not ready within {timeout_s}s:\n{self.log_tail()}")

    async def get(self, path: str, **params: str) -> tuple[int, Any]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
            async with s.get(f"{self.url}{path}", params=params) as r:
                body = await r.read()
                ctype = r.headers.get("content-type", "")
                return r.status, orjson.loads(body) if "json" in ctype else body.decode()

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, text = await self.get("/metrics")
        assert status == 200, text
        out = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return out

    async def events_total(self) -> float:
        return sum(v for (name, _), v in (await self.metrics()).items()
                   if name == "cxstream_events_total")

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM and wait (a clean shutdown)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: the crash case."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


async def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str,
                   interval_s: float = 0.3) -> Any:
    """Poll an async predicate until it returns a truthy value."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


async def produce(bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes]]
                  ) -> list[tuple[int, int]]:
    """Send (key, value) pairs in order; returns each message's (partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in items]
        metas = [await f for f in futures]
    finally:
        await producer.stop()
    return [(m.partition, m.offset) for m in metas]


async def read_all(bootstrap: str, topic: str, *, idle_s: float = 1.0) -> list[Any]:
    """Every record currently on `topic` (all partitions, from the beginning)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            await consumer._client.force_metadata_update()  # noqa: SLF001
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[Any] = []
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            batch = await consumer.getmany(timeout_ms=int(idle_s * 1000))
            for records in batch.values():
                out.extend(records)
        return out
    finally:
        await consumer.stop()


async def wait_drained(bootstrap: str, group: str, topics: list[str], timeout_s: float = 180.0) -> None:
    """Wait until `group` has committed the end offset of every partition of `topics`."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        if not tps:
            await consumer._client.force_metadata_update()  # noqa: SLF001
            tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]

        async def drained() -> bool:
            end = await consumer.end_offsets(tps)
            committed = await admin.list_consumer_group_offsets(group)
            lag = {tp: end[tp] - (committed[tp].offset if tp in committed else 0) for tp in tps}
            return all(v <= 0 for v in lag.values())

        await wait_for(drained, timeout_s, f"group {group} to commit every offset of {topics}", 0.5)
    finally:
        await consumer.stop()
        await admin.close()
