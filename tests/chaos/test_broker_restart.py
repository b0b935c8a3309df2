"""Chaos 2: the broker goes away mid-stream for 25 s and comes back on the same port and data.
The worker recovers by itself (no restart), `/readyz` says 503 while the broker is away,
and afterwards scores equal the oracle, every alert is there, every bad input is
dead-lettered."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from tests.integration.harness import (
    Expected,
    Worker,
    assert_alerts_match_oracle,
    assert_dead_letters_match,
    assert_scores_match_oracle,
    mixed_stream,
    readyz,
    wait_for,
    wait_inputs_drained,
    unique_prefix,
)

from .tools import ReadyWatch, processed_at_least

HOLD_S = 25.0  # the broker stays down this long (the scenario asks for 20-30 s)


async def test_worker_rides_out_a_broker_restart(local_broker_factory: Any, tmp_path: Path) -> None:
    broker = local_broker_factory()
    await asyncio.to_thread(broker.start, 120)
    w = Worker(bootstrap=broker.bootstrap, prefix=unique_prefix(), data_dir=tmp_path / "w")
    watch = ReadyWatch(w)
    try:
        w.start()
        await w.wait_ready()
        t = w.prefix
        profiles, surveys = mixed_stream(seed=202, responses=2000)
        first, second = surveys[:1500], surveys[1500:]
        expected = Expected()
        await expected.produce(w.bootstrap, t, profiles + first)
        await wait_for(lambda: processed_at_least(w, 0.3 * (len(profiles) + len(first))), 120,
                       "30% of the stream processed")
        watch.start()

        down = time.monotonic()
        assert await asyncio.to_thread(broker.stop) is True
        status = await wait_for(lambda: _not_ready(w), 20, "/readyz to report 503 without a broker")
        assert status == 503
        await asyncio.sleep(max(0.0, HOLD_S - (time.monotonic() - down)))  # hold the broker down
        assert await readyz(w) == 503, "ready again while the broker is still away"
        assert w.proc is not None and w.proc.poll() is None, f"the worker exited:\n{w.log_tail()}"
        up = time.monotonic()
        await asyncio.to_thread(broker.start, 120)

        await w.wait_ready(180)  # by itself: the worker was never restarted
        recovered = time.monotonic()
        await expected.produce(w.bootstrap, t, second)
        await wait_inputs_drained(w)
        await watch.stop()
        assert w.starts == 1 and w.proc is not None and w.proc.poll() is None, w.log_tail()
        # While the broker was away the worker never claimed to be ready.
        assert 200 not in watch.statuses(down + 5, up), watch.seen
        expected.finish(t)

        assert await assert_scores_match_oracle(w, expected.events) > 100
        await assert_alerts_match_oracle(w.bootstrap, t, expected.alerts)
        await assert_dead_letters_match(w.bootstrap, t, expected.dead, max_repeats_each=1)
        print(f"broker down {up - down:.1f}s, worker ready {recovered - up:.1f}s after it came back")
    finally:
        await watch.stop()
        w.kill()


async def _not_ready(w: Worker) -> int | None:
    status = await readyz(w)
    return status if status == 503 else None
