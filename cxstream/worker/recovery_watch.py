"""Watches the table recovery for a changelog partition that stops receiving records while
it is still behind its end, and reads that partition again from the next offset it needs.

Why: Faust's recovery reads the changelog through the consumer's normal fetch loop. A fetch
whose records never reach the recovery (dropped because the flow or the generation changed
while it was handed over, or cleared from the changelog queue) has already moved the client's
position past them, and nothing reads them again: the recovery then waits forever, the worker
never becomes ready, and its partitions are not processed (a known family of Faust hangs,
faust-streaming#74, #432, #651; seen once in CI as one changelog partition stuck at "have
offset -1" for a minute while the three others were restored). The watch seeks such a
partition to the offset after the last record the recovery applied and makes sure it is
fetched; records read twice are skipped by the recovery itself (it applies only offsets above
the last one it applied). Each such restart is logged with the client's state and counted
(`cxstream_recovery_stalls_total`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError
from mode import Service

from cxstream.worker.faust_patches import partition_state
from cxstream.metrics import RECOVERY_STALLS

log = logging.getLogger(__name__)

#: Seconds an active changelog partition behind its end may receive nothing before it is read
#: again. A healthy recovery receives records every fetch (a fraction of a second); reading
#: again costs only a re-fetch, so a slow broker that trips it loses nothing.
STALL_S = 15.0
#: Seconds between two looks at the recovery.
CHECK_EVERY_S = 5.0


class Stalls:
    """Which partitions made no progress for `stall_s` while behind their end (pure: fed the
    recovery's offsets and the time, so it is tested without a broker)."""

    def __init__(self, stall_s: float = STALL_S) -> None:
        self.stall_s = stall_s
        self._since: dict[Any, tuple[int, float]] = {}

    def check(self, now: float, progress: Mapping[Any, tuple[int, int]]) -> list[Any]:
        """`progress` maps each active changelog partition to (last offset applied, last
        offset to apply), -1 for none. Returns the partitions stalled since `stall_s` (and
        starts their clock again, so a partition is named at most once per `stall_s`)."""
        stalled = []
        for tp, (have, need) in progress.items():
            if have >= need:
                self._since.pop(tp, None)
                continue
            seen = self._since.get(tp)
            if seen is None or seen[0] != have:
                self._since[tp] = (have, now)
            elif now - seen[1] >= self.stall_s:
                stalled.append(tp)
                self._since[tp] = (have, now)
        for tp in set(self._since).difference(progress):
            del self._since[tp]
        return stalled

    def reset(self) -> None:
        self._since.clear()


def progress_of(recovery: Any) -> dict[Any, tuple[int, int]]:
    """(last applied, last to apply) for each active changelog partition of Faust's recovery."""
    offsets, highwaters = recovery.active_offsets, recovery.active_highwaters
    return {tp: (_offset(offsets.get(tp)), _offset(highwaters.get(tp)))
            for tp in recovery.active_tps}


def next_needed(recovery: Any, tp: Any) -> int:
    """The next changelog offset Faust's recovery needs for `tp`: it applies only offsets
    above the last it applied, so reading from here (or from anywhere before) is safe."""
    return _offset(recovery.active_offsets.get(tp)) + 1


def _offset(value: int | None) -> int:
    return -1 if value is None else value


def client_state(consumer: Any, tp: Any) -> str:
    """What the Kafka client and Faust know of a partition, for the log (best effort: read from
    the consumer thread's objects without locking, never used to decide anything)."""
    try:
        client = consumer._thread._consumer  # noqa: SLF001
        state = partition_state(client, tp)
        position = state.position if state is not None and state.has_valid_position else None
        buffered = TopicPartition(tp.topic, tp.partition) in client._fetcher._records  # noqa: SLF001
        return (f"client position {position}, paused in client {getattr(state, 'paused', None)}, "
                f"fetched and not handed over {buffered}, "
                f"fetched by Faust {tp in (consumer._active_partitions or ())}, "  # noqa: SLF001
                f"read offset {consumer._read_offset.get(tp)}, flow active {consumer.flow_active}")  # noqa: SLF001
    except Exception as exc:  # noqa: BLE001 - diagnostics only
        return f"client state unknown ({type(exc).__name__})"


async def restart_stalled(app: Any, stalls: Stalls, now: float | None = None) -> list[Any]:
    """One look at the recovery: read every stalled partition again; returns them."""
    recovery = app.tables.recovery
    if not recovery.in_recovery or not app.consumer.flow_active:
        # Not recovering, or a rebalance is under way (it seeks every partition itself).
        stalls.reset()
        return []
    progress = progress_of(recovery)
    stalled = stalls.check(time.monotonic() if now is None else now, progress)
    consumer = app.consumer
    for tp in stalled:
        start = next_needed(recovery, tp)
        log.warning(
            "table recovery: changelog partition %s:%d has received nothing for %.0f s at "
            "offset %d of %d (%s); reading it again from offset %d. If this repeats, check "
            "the broker's health and cxstream_recovery_remaining_messages.",
            tp.topic, tp.partition, stalls.stall_s, start, progress[tp][1] + 1,
            client_state(consumer, tp), start)
        RECOVERY_STALLS.inc()
        try:
            consumer.resume_partitions({tp})  # an active partition is fetched during recovery
            await consumer.seek_wait({tp: start})
        except IllegalStateError:
            pass  # no longer assigned: the next rebalance's recovery seeks it itself
    return stalled


class RecoveryWatch(Service):
    """The watch, as a service of the app: Faust starts its own timers (`app.timer`) only once
    recovery is complete, too late for this one."""

    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app = app
        self.stalls = Stalls()

    @Service.timer(CHECK_EVERY_S)
    async def _watch(self) -> None:
        await restart_stalled(self.app, self.stalls)


def register(app: Any) -> None:
    """Start the watch with the app, on every worker."""
    app.add_dependency(RecoveryWatch(app))
