"""Chaos 1: SIGKILL the worker three times at seeded random points while thousands of
responses (duplicates, out of order, too late, invalid) and profiles stream in; restart it
each time. After the drain: scores equal the oracle, the alert topic holds exactly the
oracle's alerts (repeats only with the same alert_id), a deduplicating webhook receiver
accepts each alert once (raw repeats at most one per kill), and every bad input is
dead-lettered at its own position, repeated only because of the kills. Run with both table
stores: the memory store rebuilds everything from the changelog at each start, the RocksDB
store resumes from what its files hold (written only after the changelog acknowledged it)."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import (
    Expected,
    Worker,
    assert_alerts_match_oracle,
    assert_dead_letters_match,
    assert_scores_match_oracle,
    mixed_stream,
    produce_sent,
    wait_drained,
    wait_for,
    wait_inputs_drained,
)
from tests.integration.receivers import SECRET, HttpReceiver

KILLS = 3
SEED = 101


def notify_config(path: Path, http: HttpReceiver) -> Path:
    # No cooldown and every customer kind: every alert must be notified, so the receiver's
    # set of webhook ids can be compared with the oracle's alerts.
    path.write_text(f'''
max_attempts = 5
timeout = "5s"
backoff_base_seconds = 0.05
kinds = ["detractor", "recovered", "promoter", "passive", "at_risk"]
default = "ok"

[channels.ok]
type = "webhook"
url = "{http.url}/hook/ok"
secret = "{SECRET}"
allow_private = true
''')
    return path


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
async def test_three_sigkills_mid_stream_lose_and_double_nothing(
        worker_factory: Any, http: HttpReceiver, tmp_path: Path, store: str) -> None:
    rng = random.Random(SEED)
    w: Worker = worker_factory(extra_env={
        "CXSTREAM_NOTIFY_CONFIG": str(notify_config(tmp_path / "notify.toml", http)),
        "CXSTREAM_STORE": store})
    t = w.prefix
    w.start()
    await w.wait_ready()

    profiles, surveys = mixed_stream(seed=SEED, responses=3000)
    expected = Expected()

    async def feed() -> None:
        # Paced (profiles and responses concurrently), so the stream is still flowing while
        # the worker is killed.
        got = await asyncio.gather(
            produce_sent(w.bootstrap, t, profiles, chunks=10, pause_s=(0.2, 1.5), seed=SEED),
            produce_sent(w.bootstrap, t, surveys, chunks=30, pause_s=(0.2, 1.0), seed=SEED + 1))
        expected.add(t, profiles, got[0])
        expected.add(t, surveys, got[1])

    feeding = asyncio.create_task(feed())
    kills: list[float] = []
    started = time.monotonic()
    for _ in range(KILLS):
        await asyncio.sleep(rng.uniform(0.5, 5.0))  # a seeded random point while it processes
        assert w.proc is not None and w.proc.poll() is None, f"the worker died by itself:\n{w.log_tail()}"
        w.kill()
        kills.append(time.monotonic() - started)
        w.start()
        await w.wait_ready(180)
    await feeding
    await wait_inputs_drained(w)
    expected.finish(t)
    assert w.starts == KILLS + 1

    assert await assert_scores_match_oracle(w, expected.events) > 100
    alert_repeats = await assert_alerts_match_oracle(w.bootstrap, t, expected.alerts)
    dl_repeats = await assert_dead_letters_match(w.bootstrap, t, expected.dead, max_repeats_each=KILLS)
    assert {c for c in expected.dead.values()} >= {"not_json", "missing_field", "too_late", "key_mismatch"}

    # Notifications: every alert accepted once by a receiver that deduplicates on webhook-id
    # (which is also the Idempotency-Key, checked by the receiver with the signature).
    wanted = set(expected.alerts)
    await wait_for(lambda: _ready(lambda: set(http.accepted) >= wanted), 120,
                   f"{len(wanted)} alerts to be notified")
    await wait_drained(w.bootstrap, f"{t}cxstream.notifier", [f"{t}alerts"], timeout_s=120)
    assert http.bad_signatures == 0
    assert set(http.accepted) == wanted
    raw_repeats = sum(len(v) - 1 for v in http.accepted.values())
    assert raw_repeats <= KILLS, {a: len(v) for a, v in http.accepted.items() if len(v) > 1}
    print(f"kills at {[round(k, 1) for k in kills]}s; {len(expected.events)} responses, "
          f"{len(expected.alerts)} alerts ({alert_repeats} repeated on the topic, {raw_repeats} "
          f"repeated deliveries), {len(expected.dead)} dead letters ({dl_repeats} repeated)")


async def _ready(check: Any) -> Any:
    return check()
