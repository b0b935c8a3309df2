"""The notifier's alert intake: one consumer that keeps polling, one lane per partition.

Why: deliveries wait on receivers (seconds; a hanging one up to the attempt's time limit, on
every attempt). Done inline between polls, a slow receiver kept the consumer from polling
past `max.poll.interval.ms`, the group threw it out and its next commit failed. Here the
poll loop never waits on a delivery: each assigned partition has a lane (a queue and a task
that handles its alerts one at a time, in offset order), and the loop only moves records
into lanes, pauses a partition whose lane holds `queue_size` alerts (resumes it at half),
and commits what the lanes finished.

Offsets: a lane marks an alert done only after `handle` returned (deliveries attempted,
delivery state and dead letters acknowledged by the broker); the loop commits, per
partition, the offset after the last done alert, so a commit never passes an alert not fully
handled. On revocation a partition's lane is cancelled and its queued alerts dropped, after
committing what it finished: the next owner reads them again (at least once; a delivery cut
short is repeated with the same `webhook-id`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError

from cxstream import metrics

log = logging.getLogger(__name__)

#: Most records one poll hands to the lanes.
POLL_RECORDS = 100
POLL_TIMEOUT_MS = 1000

Handler = Callable[[Any], Awaitable[None]]


class Lane:
    """The alerts of one partition read and not yet handled, and the task handling them."""

    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.ready = asyncio.Event()  # set once the partition's delivery state is loaded
        self.busy = False
        self.done: int | None = None  # offset after the last fully handled alert
        self.committed: int | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return self.queue.qsize() + (1 if self.busy else 0)


class _Listener(ConsumerRebalanceListener):
    def __init__(self, intake: "Intake") -> None:
        self.intake = intake

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.intake.revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.intake.assigned(set(assigned))


class Intake:
    """Reads the alert topic with `consumer` and hands each record to `handle`, per partition
    in offset order, never more than `queue_size` waiting per partition.

    `restore(partitions)` runs when partitions are assigned, before their first alert is
    handled; `forget(partitions)` when they are revoked. `run` returns only by raising: the
    first error of the consumer, of a commit other than a rebalance refusal, of `restore`, or
    of a lane (an exception out of `handle`)."""

    def __init__(self, consumer: AIOKafkaConsumer, topic: str, handle: Handler,
                 restore: Callable[[set[int]], Awaitable[None]],
                 forget: Callable[[set[int]], None], queue_size: int) -> None:
        self.consumer = consumer
        self.topic = topic
        self.handle = handle
        self.restore = restore
        self.forget = forget
        self.queue_size = queue_size
        self.lanes: dict[TopicPartition, Lane] = {}
        self.failure: BaseException | None = None

    # -- the poll loop ----------------------------------------------------------------------
    async def run(self) -> None:
        """Subscribe and poll until cancelled or failed (see the class docstring)."""
        self.consumer.subscribe([self.topic], listener=_Listener(self))
        try:
            while True:
                self._raise_failures()
                self._flow_control()
                batch = await self.consumer.getmany(timeout_ms=POLL_TIMEOUT_MS,
                                                    max_records=self._room())
                # No await between the fetch and here: no rebalance can come in between,
                # so every record belongs to a partition still assigned (and its lane).
                for tp, records in batch.items():
                    lane = self._lane(tp)
                    for rec in records:
                        lane.queue.put_nowait(rec)
                self._flow_control()
                await self._commit({tp: lane for tp, lane in self.lanes.items()})
        finally:
            closed = await self._close_lanes(set(self.lanes))
            with contextlib.suppress(Exception):  # best effort: uncommitted means repeated
                await asyncio.wait_for(self._commit(closed), 5)
            metrics.NOTIFIER_QUEUED.set(0)

    def _raise_failures(self) -> None:
        if self.failure is not None:
            raise self.failure
        for lane in self.lanes.values():
            if lane.task is not None and lane.task.done() and not lane.task.cancelled():
                exc = lane.task.exception()
                raise exc if exc is not None else RuntimeError("a notifier lane stopped")

    def _room(self) -> int:
        """Records the next poll may return without any lane passing `queue_size`."""
        paused = self.consumer.paused()
        free = [self.queue_size - lane.pending for tp, lane in self.lanes.items()
                if tp not in paused]
        return max(1, min([POLL_RECORDS, self.queue_size, *free]))

    def _flow_control(self) -> None:
        """Pause a partition whose lane is full; resume it once half of that is handled."""
        paused = self.consumer.paused()
        assigned = self.consumer.assignment()
        for tp, lane in self.lanes.items():
            if tp not in assigned:
                continue
            if tp not in paused and lane.pending >= self.queue_size:
                self.consumer.pause(tp)
            elif tp in paused and lane.pending <= self.queue_size // 2:
                self.consumer.resume(tp)
        metrics.NOTIFIER_QUEUED.set(sum(lane.pending for lane in self.lanes.values()))

    async def _commit(self, lanes: dict[TopicPartition, Lane]) -> None:
        """Commit the offset after each lane's last handled alert, where it moved. A refusal
        because the group rebalanced is counted and logged, not raised: those alerts are
        handled again by the partition's next owner."""
        assigned = self.consumer.assignment()
        offsets = {tp: lane.done for tp, lane in lanes.items()
                   if lane.done is not None and lane.done != lane.committed and tp in assigned}
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)  # type: ignore[arg-type]
        except CommitFailedError:
            metrics.NOTIFIER_ERRORS.labels("commit_failed").inc()
            log.warning("notifier: the group rebalanced before offsets of %d alert "
                        "partition(s) were committed; their next owner notifies those alerts "
                        "again (same webhook-id)", len(offsets))
            return
        for tp, offset in offsets.items():
            lanes[tp].committed = offset

    # -- lanes ------------------------------------------------------------------------------
    def _lane(self, tp: TopicPartition) -> Lane:
        lane = self.lanes.get(tp)
        if lane is None:
            lane = self.lanes[tp] = Lane(tp)
            lane.task = asyncio.create_task(self._work(lane), name=f"notifier-lane-{tp.partition}")
        return lane

    async def _work(self, lane: Lane) -> None:
        """Handle the lane's alerts one at a time, in offset order, once its state is loaded."""
        await lane.ready.wait()
        while True:
            rec = await lane.queue.get()
            lane.busy = True
            await self.handle(rec)
            lane.done = rec.offset + 1
            lane.busy = False

    async def _close_lanes(self, tps: set[TopicPartition]) -> dict[TopicPartition, Lane]:
        """Stop the lanes of `tps` (an alert being handled is cut short) and drop them."""
        closed = {tp: self.lanes.pop(tp) for tp in tps if tp in self.lanes}
        for lane in closed.values():
            if lane.task is not None:
                lane.task.cancel()
        for lane in closed.values():
            if lane.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await lane.task
        return closed

    # -- rebalances (called by the consumer's coordinator) ----------------------------------
    async def revoked(self, revoked: set[TopicPartition]) -> None:
        closed = await self._close_lanes(revoked)
        try:
            await self._commit(closed)
        except Exception as exc:  # noqa: BLE001 - the next owner repeats them (at least once)
            log.warning("notifier: offsets of revoked partitions not committed (%s)",
                        type(exc).__name__)
        self.forget({tp.partition for tp in revoked})

    async def assigned(self, assigned: set[TopicPartition]) -> None:
        lanes = [self._lane(tp) for tp in assigned]
        try:
            await self.restore({tp.partition for tp in assigned})
        except Exception as exc:  # noqa: BLE001 - raised by the poll loop, which restarts
            self.failure = exc
            return
        for lane in lanes:
            lane.ready.set()
