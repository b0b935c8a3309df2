"""The rebalance-completion patch: deliveries wait until Faust has cleared its queues."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from faust.tables.recovery import Recovery
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from cxstream.worker import faust_patches


async def test_completion_runs_with_flow_suspended_so_nothing_is_cleared_unseen() -> None:
    flow = FlowControlEvent(initially_suspended=False)
    queue: FlowControlQueue[int] = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    seen: dict[str, Any] = {}

    async def original(self: Any, generation_id: int = 0) -> str:
        # What Faust does: seek (deliveries may arrive meanwhile), then resume flow.
        seen["active_during_seek"] = flow.is_active()
        if flow.is_active():
            queue.put_nowait(42)  # a delivery racing the seek
        flow.resume()  # clears every managed queue
        return "done"

    fake = SimpleNamespace(app=SimpleNamespace(flow_control=flow))
    assert await faust_patches._suspending(original)(fake, 7) == "done"  # noqa: SLF001
    assert seen["active_during_seek"] is False  # a delivery would have waited, not been cleared
    assert flow.is_active()


def test_apply_patches_both_completion_paths_once() -> None:
    faust_patches.apply()
    first = (Recovery.on_recovery_completed, Recovery._resume_streams)  # noqa: SLF001
    faust_patches.apply()
    assert (Recovery.on_recovery_completed, Recovery._resume_streams) == first  # noqa: SLF001
    assert all(getattr(f, faust_patches._PATCHED) for f in first)  # noqa: SLF001


class _FakeConsumer:
    """The bookkeeping Faust's `_commit_offsets` and `_new_offset` work on."""

    def __init__(self, assigned: set[str]) -> None:
        from collections import defaultdict

        self._committed_offset: dict[str, int | None] = defaultdict(lambda: None)
        self._acked: dict[str, list[int]] = defaultdict(list)
        self._acked_index: dict[str, set[int]] = defaultdict(set)
        self.assigned = assigned

    def assignment(self) -> set[str]:
        return self.assigned


async def test_a_failed_commit_is_retried_instead_of_recorded_as_done() -> None:
    attempts: list[dict[str, int]] = []

    async def original(self: _FakeConsumer, offsets: dict[str, int], start: bool = True) -> bool:
        attempts.append(dict(offsets))
        self._committed_offset.update(offsets)  # what Faust does, success or not
        return len(attempts) > 1  # the broker is away for the first attempt

    consumer = _FakeConsumer({"surveys-0"})
    consumer._committed_offset["surveys-0"] = 100
    commit = faust_patches._rearming(original)  # noqa: SLF001
    assert await commit(consumer, {"surveys-0": 292, "revoked-1": 50}) is False
    # Re-armed for the next tick: 291 acknowledged again, so `_new_offset` yields 292.
    assert consumer._committed_offset["surveys-0"] == 291
    assert consumer._acked["surveys-0"] == [291] and 291 in consumer._acked_index["surveys-0"]
    assert "revoked-1" not in consumer._acked  # no longer ours: left alone
    assert await commit(consumer, {"surveys-0": 292}) is True
    assert consumer._committed_offset["surveys-0"] == 292


class _SlowBuffer:
    """A producer buffer whose sender takes 0.3 s per message (a loaded machine)."""

    state = "running"

    def __init__(self, n: int) -> None:
        import asyncio

        self.items = list(range(n))
        self.message_sent = asyncio.Event()
        self._cx_in_flight = 0
        self.sent: list[int] = []

    @property
    def size(self) -> int:
        return len(self.items)

    async def run(self) -> None:
        import asyncio

        while self.items:
            item = self.items.pop(0)
            self._cx_in_flight += 1  # taken off the queue, not yet handed over
            await asyncio.sleep(0.3)
            self.sent.append(item)
            self._cx_in_flight -= 1
            self.message_sent.set()


async def test_a_flush_waits_for_every_message_including_the_one_in_flight() -> None:
    import asyncio

    buf = _SlowBuffer(3)
    sender = asyncio.create_task(buf.run())
    await asyncio.sleep(0.01)
    await faust_patches._flush_all(buf)  # noqa: SLF001  # Faust's own gave up after 0.1 s
    assert buf.sent == [0, 1, 2] and buf.size == 0
    await sender


async def test_seek_to_committed_rewinds_input_partitions_the_group_never_committed() -> None:
    from aiokafka import TopicPartition

    never, zero, done = (TopicPartition("t.surveys", p) for p in (0, 1, 2))
    changelog = TopicPartition("t.cxstream-state-changelog", 0)
    rewound: dict[TopicPartition, int] = {}

    class Thread:
        async def earliest_offsets(self, *tps: TopicPartition) -> dict[TopicPartition, int]:
            return {tp: 3 if tp == zero else 0 for tp in tps}  # 0-2 of one deleted by retention

        async def seek_wait(self, offsets: dict[TopicPartition, int]) -> None:
            rewound.update(offsets)

    async def original(self: Any) -> dict[TopicPartition, int | None]:
        # aiokafka's seek_to_committed: seeks only partitions committed above 0.
        return {never: None, zero: 0, done: 7, changelog: None}

    fake = SimpleNamespace(_thread=Thread(), app=SimpleNamespace(
        tables=SimpleNamespace(changelog_topics={changelog.topic})))
    result = await faust_patches._rewinding(original)(fake)  # noqa: SLF001
    assert result == {never: None, zero: 0, done: 7, changelog: None}  # callers see the same
    # Records Faust dropped before the first commit are read again; a changelog's position
    # is Faust's recovery's business, and a committed partition was already sought. Sought
    # to offsets (a position at once), never left "awaiting reset": Faust's livelock check
    # crashes the consumer on a partition without a position.
    assert rewound == {never: 0, zero: 3}


async def test_a_partition_revoked_meanwhile_is_left_to_the_next_generation() -> None:
    from aiokafka import TopicPartition
    from aiokafka.errors import IllegalStateError

    class Thread:
        async def earliest_offsets(self, *tps: TopicPartition) -> dict[TopicPartition, int]:
            return {tp: 0 for tp in tps}

        async def seek_wait(self, offsets: dict[TopicPartition, int]) -> None:
            raise IllegalStateError("No current assignment for partition t.surveys-0")

    async def original(self: Any) -> dict[TopicPartition, int | None]:
        return {TopicPartition("t.surveys", 0): None}

    fake = SimpleNamespace(_thread=Thread(), app=SimpleNamespace(
        tables=SimpleNamespace(changelog_topics=set())))
    assert await faust_patches._rewinding(original)(fake) == {TopicPartition("t.surveys", 0): None}  # noqa: SLF001


def test_apply_patches_the_seek_once() -> None:
    from faust.transport.consumer import ThreadDelegateConsumer

    faust_patches.apply()
    first = ThreadDelegateConsumer.seek_to_committed
    faust_patches.apply()
    assert ThreadDelegateConsumer.seek_to_committed is first
    assert getattr(first, faust_patches._PATCHED)  # noqa: SLF001


async def test_the_livelock_check_skips_a_partition_without_a_position() -> None:
    from aiokafka import TopicPartition
    from aiokafka.consumer.subscription_state import Assignment

    reset, fetching = TopicPartition("t.surveys", 0), TopicPartition("t.surveys", 1)
    assignment = Assignment({reset, fetching})
    assignment.state_value(fetching).seek(42)
    assignment.state_value(reset).await_reset("earliest")  # e.g. committed offset out of range
    subscription = SimpleNamespace(assignment=assignment)
    fake = SimpleNamespace(_consumer=SimpleNamespace(_fetcher=SimpleNamespace(
        _subscriptions=SimpleNamespace(subscription=subscription))))
    checked: list[Any] = []

    def original(self: Any, now: float, tp: Any) -> None:
        # Faust's check reads the position, which aiokafka asserts exists.
        checked.append((tp, self._consumer._fetcher._subscriptions.subscription.assignment
                        .state_value(TopicPartition(tp.topic, tp.partition)).position))

    patched = faust_patches._positioned_only(original)  # noqa: SLF001
    patched(fake, 0.0, reset)
    patched(fake, 0.0, fetching)
    assert checked == [(fetching, 42)]
    fake._consumer = None  # not started (or stopped): nothing to check
    patched(fake, 0.0, fetching)
    assert len(checked) == 1


async def test_the_worker_consumer_fetches_with_a_short_wait(monkeypatch: Any) -> None:
    """Faust's own consumer factory, patched: the wait reaches the fetcher aiokafka builds
    (stopped right there: no broker in unit tests)."""
    from unittest.mock import AsyncMock

    import aiokafka.consumer.consumer as aiokafka_consumer
    import faust

    faust_patches.apply()
    app = faust.App("cxstream-unit-fetch-wait", broker="kafka://127.0.0.1:1")
    client = app.consumer._thread._create_worker_consumer(app.transport)  # noqa: SLF001
    captured: dict[str, Any] = {}

    class Built(Exception):
        pass

    def fetcher(*args: Any, **kwargs: Any) -> None:
        captured.update(kwargs)
        raise Built

    monkeypatch.setattr(aiokafka_consumer, "Fetcher", fetcher)
    monkeypatch.setattr(client._client, "bootstrap", AsyncMock())  # noqa: SLF001
    monkeypatch.setattr(client, "_wait_topics", AsyncMock())
    try:
        with pytest.raises(Built):
            await client.start()
    finally:
        await client._client.close()  # noqa: SLF001
        client._closed = True  # noqa: SLF001
    assert captured["fetch_max_wait_ms"] == faust_patches.FETCH_MAX_WAIT_MS == 100
