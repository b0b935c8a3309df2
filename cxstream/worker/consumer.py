"""Hands the input records of each fetch to the processor in one call, below Faust's streams.

Why: Faust delivers every message on its own, through two tasks and a queue, and a stream
that acknowledges it on its own; that machinery alone runs far slower than a plain aiokafka
consumer (the bench's "faust floor", docs/performance.md), whatever the agent does. This
consumer keeps everything else of Faust — the group membership and partition assignment,
the tables and their recovery, flow control during rebalances, the offset commits — and
replaces only the per-message delivery of the input topics: the records one fetch returns
for them go to `on_batch` together, and are acknowledged together once it returns. Records of
every other topic (table changelogs while recovering) still take Faust's own path.

Kept from Faust's fetch loop, on purpose: records fetched while the flow is stopped (a
rebalance began) are dropped and the partitions sought back to their committed offsets;
records older than the partition's read offset (already delivered) are skipped; holes in the
offsets (transaction markers) are registered as gaps so commits can pass them. A rebalance
waits for the batch in hand (it stands in Faust's list of unacknowledged messages), so a
partition is never given away half-processed. Stricter than Faust: input records are not
delivered at all until the rebalance has ended (`_seek_back`), and a stop lets every batch
handed over complete, acknowledging them in order (`_handle`, `_let_finish`), and changelog
records dropped from a fetch during a table recovery are read again (`_recover_again`), which
Faust's loop never did.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

from aiokafka.errors import IllegalStateError
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from cxstream.worker.recovery_watch import next_needed

#: Seconds a stop waits for the batch handed over to complete before leaving it unacknowledged.
FINISH_TIMEOUT_S = 10.0
#: The records of one fetch for the input topics, by partition, each list in offset order.
Batch = Mapping[TP, Sequence[Any]]
#: Called with a batch and the `time.monotonic()` at which it was fetched; returns the rest
#: of the batch's work, under way, after which its records may be acknowledged.
BatchHandler = Callable[[Batch, float], Awaitable[Awaitable[None]]]


class InFlight:
    """Stands in Faust's set of unacknowledged messages for a partition's part of the batch
    in hand, so a rebalance or a stop waits for it (`Consumer.wait_empty`)."""

    __slots__ = ("tp", "offset", "acked", "refcount", "__weakref__")

    def __init__(self, tp: TP, offset: int) -> None:
        self.tp, self.offset, self.acked, self.refcount = tp, offset, False, 1


def batching_consumer(topics: Collection[str], on_batch: BatchHandler) -> type[AIOKafkaConsumer]:
    """Faust's aiokafka consumer class, delivering the records of `topics` to `on_batch`."""

    class BatchingConsumer(_BatchingConsumer):
        batch_topics = frozenset(topics)

    BatchingConsumer.on_batch = staticmethod(on_batch)  # type: ignore[assignment]
    return BatchingConsumer


class _BatchingConsumer(AIOKafkaConsumer):
    batch_topics: frozenset[str] = frozenset()
    on_batch: BatchHandler
    #: The previous batch's completion (acknowledgement included), while under way.
    _finishing: asyncio.Future[None] | None = None

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - needs a broker
        # Faust's loop (faust/transport/consumer.py), one batch per fetch instead of one
        # callback per message; same stop conditions and error handling.
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                finishing = self._finishing
                if finishing is not None and finishing.done():
                    self._finishing = None
                    finishing.result()  # a failed batch stops the consumer, as Faust's agents
                self.diag.set_flag(CONSUMER_FETCHING)
                records, active = await self._wait_next_records(1.0)
                await self.sleep(0)
                if records and not self.should_stop:
                    await self._deliver(records, active, time.monotonic())
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            # The type only at ERROR: an exception's message and traceback may quote the
            # records it was handling (customer data); they are at DEBUG.
            self.log.error("Drain messages raised %s; the consumer stops",
                           type(exc).__name__)
            self.log.debug("details of the error", exc_info=exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)
            await self._let_finish()

    async def _let_finish(self) -> None:
        """On the way out (a stop), let the batch handed over complete: its writes are under
        way and take milliseconds, and a restart then does not redo it. One that cannot
        complete in time is read again (every step is idempotent)."""
        finishing, self._finishing = self._finishing, None
        if finishing is None or finishing.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(finishing), FINISH_TIMEOUT_S)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            finishing.cancel()
        except Exception as exc:  # noqa: BLE001 - stopping anyway; nothing was acknowledged
            self.log.error("the last batch failed while stopping (%s); it will be read again",
                           type(exc).__name__)

    async def _deliver(self, records: Mapping[TP, Sequence[Any]], active: set[TP] | None,
                       fetched_at: float) -> None:
        if not self.flow_active:
            # A rebalance began while the fetch was under way: Faust throws such records away
            # and reads them again from the committed offsets.
            await self._seek_back()
            await self._recover_again(records)
            return
        generation = self.app.consumer_generation_id
        batch: dict[TP, list[Any]] = {}
        held_back = False
        for i, (tp, tp_records) in enumerate(records.items()):
            if active is not None and tp not in active and tp not in self._buffered_partitions:
                await self._recover_again([tp])
                continue
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            if tp.topic in self.batch_topics:
                if self.app.rebalancing:
                    held_back = True
                    continue
                fresh = await self._unread(tp, tp_records)
                if fresh:
                    batch[tp] = fresh
            else:
                if not await self._one_by_one(tp, tp_records, generation):
                    await self._recover_again(list(records)[i:])
                    return
        if held_back:
            await self._seek_back()
        elif batch and self.flow_active and self.app.consumer_generation_id == generation:
            await self._handle(batch, fetched_at)

    async def _seek_back(self) -> None:
        """Read the input partitions again from their committed offsets, for records that
        were fetched but must not be delivered.

        Input records fetched while a rebalance is still under way are such records (which
        Faust's own loop delivers): the recovery resumes the input partitions, then seeks
        them to their committed offsets, and only then ends the rebalance. Records delivered
        in between were processed, then read again after the seek — after every restart,
        up to the whole of what was fetched meanwhile (hundreds of records, replayed)."""
        try:
            await self.perform_seek()
        except Exception as exc:  # noqa: BLE001 - as Faust's getmany
            self.log.warning("exception seeking the input partitions back to their committed "
                             "offsets: %s", type(exc).__name__)

    async def _recover_again(self, tps: Collection[TP]) -> None:
        """Seek the changelog partitions under active recovery among `tps`, whose fetched
        records are being dropped, to the next offset the recovery needs.

        Faust reads dropped input records again from the committed offsets, but nothing reads
        dropped changelog records again: the client's position has moved past them, so the
        recovery either waits for them forever (they were the partition's last; the worker
        never becomes ready) or misses them (state lost). A fetch can deliver them while the
        flow is stopped just after the recovery sought its partitions: one fetch call lives up
        to its timeout across a rebalance, and while every partition is paused aiokafka returns
        the records of all of them. The recovery applies only offsets above the last it
        applied, so reading again is always safe."""
        recovery = self.app.tables.recovery
        if not recovery.in_recovery:
            return  # the next recovery seeks every changelog partition itself
        again = {tp: next_needed(recovery, tp) for tp in tps
                 if tp.topic not in self.batch_topics and tp in recovery.active_tps}
        if not again:
            return
        self.log.info("reading changelog records dropped from a fetch again: %s",
                      ", ".join(f"{tp.topic}:{tp.partition} from {o}" for tp, o in again.items()))
        try:
            await self.seek_wait(again)
        except IllegalStateError:
            pass  # no longer assigned: the next recovery seeks what it needs

    async def _unread(self, tp: TP, tp_records: Sequence[Any]) -> list[Any]:
        """The records not delivered yet (a seek back re-fetches some); registers holes."""
        read = self._read_offset[tp]
        fresh = []
        for record in tp_records:
            offset = record.offset
            if read is None or offset >= read:
                if read and offset - read > 1:
                    await self._add_gap(tp, read + 1, offset)
                fresh.append(record)
                read = offset
        return fresh

    async def _one_by_one(self, tp: TP, tp_records: Sequence[Any], generation: int) -> bool:
        """Faust's own delivery, for the records of other topics; False when cut short."""
        read_offset = self._read_offset
        for record in tp_records:
            if not self.flow_active or self.app.consumer_generation_id != generation:
                return False
            offset = record.offset
            read = read_offset[tp]
            if read is None or offset >= read:
                if read and offset - read > 1 and self.app.topics.acks_enabled_for(tp.topic):
                    await self._add_gap(tp, read + 1, offset)
                await self.wait_first(self.callback(self._to_message(tp, record)),
                                      self.suspend_flow.wait())
                read_offset[tp] = offset
        return True

    async def _handle(self, batch: dict[TP, list[Any]], fetched_at: float) -> None:
        """Hand the batch over, then wait for the previous one to finish: the next batch is
        fetched and planned while this one's writes are acknowledged by the broker."""
        markers = [InFlight(tp, recs[0].offset) for tp, recs in batch.items()]
        for marker in markers:
            self._unacked_messages.add(marker)
        try:
            rest = await self.on_batch(batch, fetched_at)
        except BaseException:
            self._release(markers)
            raise
        inbound = self.app.monitor.stream_inbound_time  # Faust's stall watch reads it
        now = time.monotonic()
        for tp, recs in batch.items():
            self._read_offset[tp] = recs[-1].offset
            inbound[tp] = now
        previous = self._finishing
        self._finishing = asyncio.ensure_future(self._finish(batch, markers, rest, previous))
        if previous is not None:
            # Shielded: a stop cancels this task here, and the previous batch (whose state
            # this one's completion builds on) must still complete and be acknowledged.
            await asyncio.shield(previous)

    async def _finish(self, batch: dict[TP, list[Any]], markers: list[InFlight],
                      rest: Awaitable[None], previous: asyncio.Future[None] | None) -> None:
        try:
            await rest
            if previous is not None:
                await previous  # acknowledged in order: a stop waits only for the last one
            self._ack_batch(batch)
        finally:
            self._release(markers)
        commit_every = self._commit_every
        if commit_every is not None and self._n_acked >= commit_every:
            self._n_acked = 0
            await self.commit()

    def _release(self, markers: list[InFlight]) -> None:
        for marker in markers:
            marker.acked = True
            self._unacked_messages.discard(marker)
        notify(self._waiting_for_ack)

    def _ack_batch(self, batch: Mapping[TP, Sequence[Any]]) -> None:
        """`Consumer.ack` for every record of the batch, in one go."""
        n = 0
        with ack_lock:
            for tp, recs in batch.items():
                committed = self._committed_offset[tp]
                index = self._acked_index[tp]
                acked = self._acked[tp]
                for record in recs:
                    offset = record.offset
                    if (committed is None or offset >= committed) and offset not in index:
                        index.add(offset)
                        acked.append(offset)
                        n += 1
            self._n_acked += n
