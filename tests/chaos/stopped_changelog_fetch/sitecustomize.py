"""Test-only: loaded by worker subprocesses whose PYTHONPATH includes this folder.

Makes the first fetch of changelog records during a table recovery arrive just as the
consumer's flow is stopped (what a rebalance does, and what a fetch call that outlived the
previous generation meets). Those records are dropped; without `cxstream.worker.consumer` seeking
their partitions back, the recovery misses them (lost state) or waits for them forever.
"""

import asyncio

from faust.transport import consumer as _consumer

_original = _consumer.Consumer._wait_next_records


async def _wait_next_records(self, timeout):  # type: ignore[no-untyped-def]
    records, active = await _original(self, timeout)
    if (records and self.app.in_recovery and not getattr(self, "_test_stopped_once", False)
            and any(tp.topic.endswith("-changelog") for tp in records)):
        self._test_stopped_once = True
        print("TEST: flow stopped under a fetch of changelog records: "
              + ", ".join(f"{tp.partition}:{r[0].offset}-{r[-1].offset}"
                          for tp, r in sorted(records.items())), flush=True)
        self.stop_flow()
        asyncio.get_running_loop().call_later(0.5, self.resume_flow)
    return records, active


_consumer.Consumer._wait_next_records = _wait_next_records
