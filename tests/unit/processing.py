"""Fakes for driving a `Processor` without a broker: its output topics are `Sink`s, its
state writes a `Changelog`, and `handle` passes one record through it as a batch of one
(`cxstream.worker.consumer`)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from cxstream.worker.processor import Processor


class Sink:
    """Stands in for a Faust topic: records what is sent, the broker acknowledging each.
    `failures` KafkaErrors are raised first, while handing records over (a broker away)."""

    def __init__(self, failures: list[Exception] | None = None) -> None:
        self.sent: list[Any] = []
        self.failures = list(failures or [])

    async def send(self, **kwargs: Any) -> Any:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(kwargs)
        acked = asyncio.get_running_loop().create_future()
        acked.set_result(None)
        return acked


class Changelog:
    """Stands in for the state's `ChangelogWriter`: records each batch's writes."""

    def __init__(self) -> None:
        self.writes: list[Any] = []

    async def write(self, writes: Any) -> None:
        self.writes.append(writes)


async def handle(processor: Processor, topic: str, value: bytes, key: bytes = b"c-1",
                 offset: int = 0) -> None:
    """One record through the processor, as a batch of one; returns once it is complete."""
    record = SimpleNamespace(topic=topic, partition=0, offset=offset, key=key, value=value)
    await (await processor.process({TP(topic, 0): [record]}))
