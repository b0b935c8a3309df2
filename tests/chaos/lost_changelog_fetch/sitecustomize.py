"""Test-only: loaded by worker subprocesses whose PYTHONPATH includes this folder.

Makes the Faust recovery hang seen once in CI happen deterministically: the records of a
changelog partition that reach its end, fetched during a table recovery, never reach the
recovery, although the client's position has moved past them. Without `cxstream.worker.recovery_watch`
the recovery then waits for them forever and the worker never becomes ready.
"""

from faust.transport import consumer as _consumer

_original = _consumer.Consumer._wait_next_records


async def _wait_next_records(self, timeout):  # type: ignore[no-untyped-def]
    records, active = await _original(self, timeout)
    if records and self.app.in_recovery and not getattr(self, "_test_lost_once", False):
        for tp in sorted(records):
            lost = records[tp]
            if tp.topic.endswith("-changelog") and lost[-1].offset + 1 >= self.highwater(tp):
                self._test_lost_once = True
                del records[tp]
                print(f"TEST: lost changelog records {tp.topic}:{tp.partition} "
                      f"{lost[0].offset}-{lost[-1].offset}", flush=True)
                break
    return records, active


_consumer.Consumer._wait_next_records = _wait_next_records
