"""Fixes for Faust 0.15 flaws that lose or leave behind input messages, crash the worker or stall it; applied once per process.

Since `cxstream.worker.consumer`, input records skip Faust's stream queues and state writes skip its
producer buffer (`cxstream.worker.changelog`), so fixes 1 and 3 no longer guard cxstream's own
records; they stay for what still takes those paths (Faust's deliveries of other topics, its
own buffered sends). Fixes 2 and 4 (commits, seeks) apply to the batches as before.

1. A race that leaves input messages unprocessed after a rebalance.

When recovery completes, Faust (0.15) resumes the input partitions, seeks them to their
committed offsets, and then resumes flow control, which *clears every stream queue*.
Messages the fetcher delivered while the seek was under way sit in those queues and are
thrown away; the client's position has already moved past them, so they are never
processed nor acknowledged. The committed offset then stops below them for good (lag never
drains) and their effects are missing. Observed after SIGKILL + restart, about one run in
four under load.

The fix suspends flow control for the whole of `on_recovery_completed` (and of
`_resume_streams`, the same steps when no table needs recovery): the fetcher's
deliveries wait (Faust's conductor waits for flow control before enqueueing) until after the
queues are cleared, so nothing delivered in that window is lost. Applied once per process,
before the app starts.

2. A failed offset commit (broker away, group rebalancing) is recorded as done anyway: Faust
has already taken the offsets off its acknowledged list and marks them committed, so it never
tries again. If no newer message is acknowledged afterwards (the stream had drained), the
group's committed offset stays behind for good: lag never reaches 0 and a restart re-reads
those messages. The fix re-arms a failed commit for partitions still assigned, so the next
commit tick retries it.

3. Flushing the producer buffer gives up after 0.1 s without progress, and never counts the
message its sender is handing to the client at that moment. Faust flushes before committing
offsets and before leaving the group, so under load a commit could cover table (changelog)
writes and dead letters that were still in the buffer; a stop or crash then lost them for
good (seen as stale customer state after a SIGTERM handover, and as missing dead letters).
The fix makes a flush wait until the buffer is empty and nothing is in flight; a buffer that
makes no progress for `FLUSH_STALL_S` raises instead of letting a commit through.

4. "Seek to committed" does nothing for a partition the group never committed. Faust throws
fetched records away in several places (a rebalance began while a fetch was under way, the
generation changed, the partition is not active yet) and relies on seeking back to the
committed offset afterwards. aiokafka's `seek_to_committed` skips partitions without a
committed offset (and those committed at 0), so the client's position stays past the dropped
records: the first messages of a partition that changed hands before its first commit were
never processed (seen as the first 20-40 messages of two partitions missing after a second
worker joined mid-stream). The fix seeks such input partitions to their first offset, which is
what `consumer_auto_offset_reset="earliest"` promises for a group without offsets; at worst
messages already processed are read again, and every step is idempotent by offset.

5. Faust's livelock check (`verify_event_path`, every 7 s) reads every assigned partition's
fetch position, which aiokafka asserts exists; a partition being reset (its committed offset
out of range, or sought "to the beginning") has none for a moment, and the AssertionError
crashed the worker (seen once in CI). The fix skips the check for such a partition: it is
a diagnostic (it logs stalled streams), and the next round checks the partition again.

6. Faust creates its consumer with `fetch_max_wait_ms=1500`. aiokafka has one fetch in
flight per broker, and leaves out of it the partitions whose fetched records are still being
handed over (for 100 ms) while the others go ahead; when those others receive nothing (a
quiet topic, such as `customers` most of the time), the broker holds the fetch for 1.5 s and
the busy partitions' new records wait behind it. Seen in the bench's alert latency as
stretches of alerts late by more than that wait, at a steady load the worker kept up with,
with the worker idle meanwhile. The fix sets `FETCH_MAX_WAIT_MS`; a shorter wait only
costs an idle worker more empty fetches (ten a second).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer, ThreadDelegateConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.producer import ProducerBuffer

_PATCHED = "_cxstream_patched"
#: Longest the broker may hold a fetch that found no new records (Faust: 1500 ms; the Java
#: consumer's default is 500 ms): also the longest busy partitions can wait behind it.
FETCH_MAX_WAIT_MS = 100
#: Seconds a producer-buffer flush waits without any message leaving before it gives up
#: with an error (the commit that needed it does not happen).
FLUSH_STALL_S = 60.0


def _suspending(original: Any) -> Any:
    async def patched(self: Recovery, generation_id: int = 0) -> Any:
        # Deliveries block here until Faust's own resume at the end, after the queues
        # are cleared; if completion is abandoned for a new rebalance, that rebalance
        # resumes flow itself.
        self.app.flow_control.suspend()
        return await original(self, generation_id)

    setattr(patched, _PATCHED, True)
    patched.__doc__ = original.__doc__
    return patched


def _rearming(original: Any) -> Any:
    async def patched(self: Consumer, offsets: Any, start_new_transaction: bool = True) -> bool:
        before = {tp: self._committed_offset.get(tp) for tp in offsets}
        did_commit = await original(self, offsets, start_new_transaction)
        if not did_commit:
            assigned = self.assignment()
            for tp, offset in offsets.items():
                if tp not in assigned or offset is None or offset < 1:
                    continue
                if before[tp] is not None and before[tp] >= offset:
                    continue
                # Pretend offset-1 is acknowledged again and the one before it committed: the
                # next `_new_offset` then yields `offset` (or more) and the commit is retried.
                self._committed_offset[tp] = offset - 1
                if offset - 1 not in self._acked_index[tp]:
                    self._acked_index[tp].add(offset - 1)
                    self._acked[tp].append(offset - 1)
        return did_commit

    setattr(patched, _PATCHED, True)
    patched.__doc__ = original.__doc__
    return patched


def _counting_send(original: Any) -> Any:
    async def patched(self: ProducerBuffer, fut: Any) -> None:
        self._cx_in_flight = getattr(self, "_cx_in_flight", 0) + 1
        try:
            await original(self, fut)
        finally:
            self._cx_in_flight -= 1

    setattr(patched, _PATCHED, True)
    return patched


async def _flush_all(self: ProducerBuffer) -> None:
    """Drain the buffer: return only when no message is queued or being handed over."""
    last_progress = time.monotonic()
    while self.size or getattr(self, "_cx_in_flight", 0):
        if self.state != "running":
            raise RuntimeError("Cannot flush: Producer not Running")
        self.message_sent.clear()
        try:
            await asyncio.wait_for(self.message_sent.wait(), timeout=1.0)
            last_progress = time.monotonic()
        except asyncio.TimeoutError:
            if time.monotonic() - last_progress > FLUSH_STALL_S:
                raise RuntimeError(
                    f"the producer buffer has not sent a message for {FLUSH_STALL_S:.0f}s "
                    f"({self.size} waiting): is the broker reachable? Offsets are not "
                    "committed past unsent writes.") from None


setattr(_flush_all, _PATCHED, True)


def _rewinding(original: Any) -> Any:
    async def patched(self: ThreadDelegateConsumer) -> Any:
        committed = await original(self)
        changelogs = self.app.tables.changelog_topics
        never = [tp for tp, offset in committed.items()
                 if not offset and tp.topic not in changelogs]
        if never:
            try:
                # To their first offsets, not "to the beginning": that leaves a partition
                # without a position until the client has asked the broker, and Faust's
                # livelock check (`verify_event_path`, every 7 s) crashes the consumer when
                # it meets one (an AssertionError in aiokafka's `position`).
                first = await self._thread.earliest_offsets(*never)  # noqa: SLF001
                await self._thread.seek_wait(first)  # noqa: SLF001
            except IllegalStateError:
                pass  # no longer assigned: the next generation seeks again
        return committed

    setattr(patched, _PATCHED, True)
    patched.__doc__ = original.__doc__
    return patched


def partition_state(client: Any, tp: Any) -> Any:
    """aiokafka's state of a partition in `client` (position, paused), or None when it has no
    assignment for it. Read from the consumer thread's objects: for checks and logs only."""
    subscription = None if client is None else client._fetcher._subscriptions.subscription  # noqa: SLF001
    if subscription is None:
        return None
    return subscription.assignment.state_value(TopicPartition(tp.topic, tp.partition))


def _positioned_only(original: Any) -> Any:
    def patched(self: AIOKafkaConsumerThread, now: float, tp: Any) -> Any:
        state = partition_state(self._consumer, tp)  # noqa: SLF001
        if state is None or not state.has_valid_position:
            return None
        return original(self, now, tp)

    setattr(patched, _PATCHED, True)
    patched.__doc__ = original.__doc__
    return patched


def _short_fetch_wait(original: Any) -> Any:
    def patched(self: AIOKafkaConsumerThread, transport: Any) -> Any:
        consumer = original(self, transport)
        # Read by the consumer when it starts and creates its fetcher; aiokafka has no
        # setter, and Faust passes a constant.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # noqa: SLF001
        return consumer

    setattr(patched, _PATCHED, True)
    patched.__doc__ = original.__doc__
    return patched


def apply() -> None:
    """Patch both ways Faust ends a rebalance (with and without table recovery), its commit
    of acknowledged offsets, its producer-buffer flush, its seek to committed offsets, its
    livelock check and its consumer's fetch wait."""
    for name in ("on_recovery_completed", "_resume_streams"):
        original = getattr(Recovery, name)
        if not getattr(original, _PATCHED, False):
            setattr(Recovery, name, _suspending(original))
    if not getattr(Consumer._commit_offsets, _PATCHED, False):  # noqa: SLF001
        Consumer._commit_offsets = _rearming(Consumer._commit_offsets)  # type: ignore[method-assign]  # noqa: SLF001
    if not getattr(ProducerBuffer._send_pending, _PATCHED, False):  # noqa: SLF001
        ProducerBuffer._send_pending = _counting_send(ProducerBuffer._send_pending)  # type: ignore[method-assign]  # noqa: SLF001
    if not getattr(ProducerBuffer.flush, _PATCHED, False):
        ProducerBuffer.flush = _flush_all  # type: ignore[method-assign]
    if not getattr(AIOKafkaConsumerThread.verify_event_path, _PATCHED, False):
        AIOKafkaConsumerThread.verify_event_path = _positioned_only(  # type: ignore[method-assign]
            AIOKafkaConsumerThread.verify_event_path)
    if not getattr(AIOKafkaConsumerThread._create_worker_consumer, _PATCHED, False):  # noqa: SLF001
        AIOKafkaConsumerThread._create_worker_consumer = _short_fetch_wait(  # type: ignore[method-assign]  # noqa: SLF001
            AIOKafkaConsumerThread._create_worker_consumer)  # noqa: SLF001
    if not getattr(ThreadDelegateConsumer.seek_to_committed, _PATCHED, False):
        ThreadDelegateConsumer.seek_to_committed = _rewinding(  # type: ignore[method-assign]
            ThreadDelegateConsumer.seek_to_committed)
