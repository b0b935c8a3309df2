"""A state written in the earlier bucket layout (one entry per segment and bucket, before
fbb92d8) is never read as if it held no buckets: a worker that recovers it stops at its first
batch of that partition, with an exit code that says it failed and a log line that says what
to do (docs/operating/state.md, "State layout")."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from .harness import Worker, mixed_stream, produce_sent, wait_for


async def test_a_state_of_the_earlier_bucket_layout_stops_the_worker(worker_factory: Any) -> None:
    w: Worker = worker_factory()
    w.start()
    await w.wait_ready()
    assert w.stop() == 0  # the topics exist now, the changelog among them

    # A bucket as the earlier layout stored it, in partition 0 of the state changelog.
    producer = AIOKafkaProducer(bootstrap_servers=w.bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(f"{w.prefix}cxstream-state-changelog",
                                     orjson.dumps([1, 0, 0, 0, 0, 0, 0, 0, 5]),
                                     key=orjson.dumps("b|0|60000|0|plan:pro"), partition=0)
    finally:
        await producer.stop()

    w.start()
    # Responses of many customers: every partition gets some, partition 0 among them.
    _, surveys = mixed_stream(seed=808, responses=200, bad_share=0.0, late_share=0.0,
                              retry_share=0.0, profile_updates=0)
    await produce_sent(w.bootstrap, w.prefix, surveys)
    started = time.monotonic()

    async def exited() -> bool:
        return w.proc is not None and w.proc.poll() is not None

    await wait_for(exited, 120, "the worker to stop on the earlier layout")
    assert w.proc is not None and w.proc.returncode != 0, w.log_tail()
    log = w.log_tail(400)
    assert ("earlier cxstream layout" in log
            and "'State layout' in docs/operating/state.md" in log), log
    print(f"worker stopped {time.monotonic() - started:.1f}s after the responses were sent, "
          f"exit code {w.proc.returncode}")
