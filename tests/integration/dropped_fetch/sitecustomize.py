"""Test-only: loaded by worker subprocesses whose PYTHONPATH includes this folder.

Makes a Faust race happen on the first fetch, deterministically: the first records fetched
arrive just as the consumer's flow is stopped (what a rebalance starting at that moment
does). Faust then drops them and seeks back to the committed offsets, expecting to read them
again. Before the group has committed anything, that seek did nothing (see
`cxstream.worker.faust_patches`, fix 4) and the first batch of every partition was lost.
"""

import asyncio

from faust.transport import consumer as _consumer

_original = _consumer.Consumer._wait_next_records


async def _wait_next_records(self, timeout):  # type: ignore[no-untyped-def]
    records, active = await _original(self, timeout)
    if records and not getattr(self, "_test_dropped_once", False):
        self._test_dropped_once = True
        self.stop_flow()  # as a rebalance beginning now would; resumed a moment later
        asyncio.get_running_loop().call_later(1.0, self.resume_flow)
    return records, active


_consumer.Consumer._wait_next_records = _wait_next_records
