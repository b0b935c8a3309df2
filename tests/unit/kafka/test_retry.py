"""One backoff for every record cxstream must not lose: refused sends are sent again."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError

from cxstream.kafka import retry


async def test_sends_again_until_acknowledged_waiting_longer_each_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    monkeypatch.setattr(retry.asyncio, "sleep", sleep)
    refusals = 7
    attempts = 0

    async def attempt() -> str:
        nonlocal attempts
        attempts += 1
        if attempts <= refusals:
            raise KafkaConnectionError()
        return "acked"

    first: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    first.set_exception(KafkaConnectionError())  # the send already under way was refused
    assert await retry.until_acknowledged(attempt, "a record", first=first) == "acked"
    assert attempts == refusals + 1
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


async def test_other_errors_are_not_retried() -> None:
    async def attempt() -> None:
        raise ValueError("too big")

    with pytest.raises(ValueError):
        await retry.until_acknowledged(attempt, "a record")
