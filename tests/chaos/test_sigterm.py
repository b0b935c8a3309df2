"""Chaos 6: SIGTERM is a clean shutdown. The worker exits with code 0 within a bound, having
committed what it processed: with a drained stream the committed offsets equal the end
offsets and a restart re-reads nothing; mid-stream, the restart replays at most a small
uncommitted tail (never the stream), and the results equal the oracle."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.harness import (
    Expected,
    Worker,
    assert_alerts_match_oracle,
    assert_dead_letters_match,
    assert_scores_match_oracle,
    metric_samples,
    mixed_stream,
    produce_sent,
    wait_for,
    wait_inputs_drained,
)

from .tools import processed_at_least

EXIT_WITHIN_S = 30.0


def sigterm(w: Worker) -> float:
    """SIGTERM the worker; assert exit code 0 within the bound; returns the seconds it took."""
    started = time.monotonic()
    code = w.stop(timeout_s=EXIT_WITHIN_S)  # SIGKILLs (code -9) if the bound is missed
    took = time.monotonic() - started
    assert code == 0, f"exit code {code} after {took:.1f}s:\n{w.log_tail()}"
    return took


async def committed_and_end(w: Worker) -> tuple[dict[Any, int], dict[Any, int]]:
    t = w.prefix
    admin = AIOKafkaAdminClient(bootstrap_servers=w.bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=w.bootstrap)
    await admin.start()
    await consumer.start()
    try:
        tps = [TopicPartition(f"{t}{topic}", p) for topic in ("surveys", "customers", "interactions")
               for p in range(w.partitions)]
        end = await consumer.end_offsets(tps)
        committed = await admin.list_consumer_group_offsets(f"{t}cxstream")
        return {tp: committed[tp].offset if tp in committed else 0 for tp in tps}, dict(end)
    finally:
        await consumer.stop()
        await admin.close()


async def outcomes(w: Worker) -> dict[str, float]:
    out: dict[str, float] = {}
    for labels, v in metric_samples(await w.metrics(), "cxstream_events_total").items():
        outcome = dict(labels)["outcome"]
        out[outcome] = out.get(outcome, 0) + v
    return out


BATCH = 50


async def test_sigterm_mid_stream_and_drained(worker_factory: Any) -> None:
    # Small batches: with the default (2000) the stream is a batch or two, and there is no
    # "mid-stream" to stop in.
    w: Worker = worker_factory(extra_env={"CXSTREAM_BATCH_SIZE": str(BATCH)})
    t = w.prefix
    w.start()
    await w.wait_ready()
    profiles, surveys = mixed_stream(seed=606, responses=2500)
    expected = Expected()
    items = profiles + surveys
    # Paced (about 4 s in all), so the stream is still flowing when the worker is stopped:
    # sent at once, the whole of it took the worker less than a poll of `processed_at_least`.
    sending = asyncio.create_task(
        produce_sent(w.bootstrap, t, items, chunks=20, pause_s=(0.1, 0.3), seed=606))

    # 1. Mid-stream: exit 0 in time; the restart replays only an uncommitted tail.
    await wait_for(lambda: processed_at_least(w, 0.3 * len(items)), 120, "30% of the stream processed")
    took_mid = sigterm(w)
    committed, end = await committed_and_end(w)
    done = sum(committed.values())
    assert 0 < done < sum(end.values()), (committed, end)  # it stopped mid-stream, having committed
    expected.add(t, items, await sending)
    w.start()
    await w.wait_ready(120)
    await wait_inputs_drained(w)
    replayed = (await outcomes(w)).get("replayed", 0)
    # Everything committed at shutdown is never read again; at most the batch being planned
    # when it stopped can be re-read (one handed over completes before the worker leaves).
    assert replayed <= BATCH, f"{replayed} messages replayed after a clean shutdown"

    # 2. Drained: committed == end, and a restart reads nothing at all.
    took_drained = sigterm(w)
    committed, end = await committed_and_end(w)
    assert committed == end
    w.start()
    await w.wait_ready(120)
    assert sum((await outcomes(w)).values()) == 0, "a restart after a clean shutdown re-read messages"

    expected.finish(t)
    assert await assert_scores_match_oracle(w, expected.events) > 100
    await assert_alerts_match_oracle(w.bootstrap, t, expected.alerts)
    await assert_dead_letters_match(w.bootstrap, t, expected.dead, max_repeats_each=1)
    print(f"SIGTERM exits: mid-stream {took_mid:.1f}s, drained {took_drained:.1f}s; "
          f"replayed after the mid-stream stop: {replayed:g}")
