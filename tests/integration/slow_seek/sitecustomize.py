"""Test-only: loaded by worker subprocesses whose PYTHONPATH includes this folder.

Widens the window of a Faust race deterministically: after Faust seeks the input partitions
at the end of a rebalance, wait before it resumes flow (which clears the stream queues).
Without `cxstream.worker.faust_patches`, messages fetched in that window were lost.
"""

import asyncio

from faust.transport import consumer as _consumer

_original = _consumer.Consumer.perform_seek


async def _slow_perform_seek(self):  # type: ignore[no-untyped-def]
    result = await _original(self)
    await asyncio.sleep(2.0)
    return result


_consumer.Consumer.perform_seek = _slow_perform_seek
