"""Fixes for two Faust 0.15 flaws that leave input offsets behind; applied once per process.

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
"""

from __future__ import annotations

from typing import Any

from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer

_PATCHED = "_cxstream_flow_suspended_during_completion"


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


def apply() -> None:
    """Patch both ways Faust ends a rebalance (with and without table recovery), and its
    commit of acknowledged offsets."""
    for name in ("on_recovery_completed", "_resume_streams"):
        original = getattr(Recovery, name)
        if not getattr(original, _PATCHED, False):
            setattr(Recovery, name, _suspending(original))
    if not getattr(Consumer._commit_offsets, _PATCHED, False):  # noqa: SLF001
        Consumer._commit_offsets = _rearming(Consumer._commit_offsets)  # type: ignore[method-assign]  # noqa: SLF001
