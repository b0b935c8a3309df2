"""Scores acceptance: thousands of responses over 42 days, with duplicates, out-of-order and
too-late ones, sent with `cxstream produce`; every segment, window and several whole-minute
instants equal the brute-force oracle exactly — also after a SIGKILL mid-stream."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from cxstream.core.timefmt import format_rfc3339
from cxstream.core.windows import DAY, HOUR, MINUTE

from ..unit.core import oracle
from .harness import (HORIZON_MS, Worker, assert_scores_match_oracle, loading, read_all,
                      wait_drained, wait_for)

HORIZON = HORIZON_MS


def generate(path: Path, n: int, seed: int) -> int:
    """Survey responses over 42 days ending 2 h ago, in roughly time order with jitter, plus
    producer retries (duplicates) and some responses far too late. Returns the line count."""
    rng = random.Random(seed)
    end = int(time.time() * 1000) - 2 * HOUR
    start = end - 42 * DAY
    customers = [(f"cust-{i:04d}", {"plan": rng.choice(["free", "pro", "enterprise"]),
                                    "region": rng.choice(["na", "eu", "br", "apac"])})
                 for i in range(250)]
    lines: list[bytes] = []
    for i in range(n):
        cid, seg = rng.choice(customers)
        kind = rng.choices(["nps", "csat", "ces"], weights=[3, 1, 1])[0]
        at = start + (end - start) * i // n + rng.randrange(-3 * HOUR, 3 * HOUR)
        if rng.random() < 0.03:
            at -= 36 * DAY  # too late once stream time has moved on
        doc = {"event_id": f"r{i}", "customer_id": cid, "survey": kind,
               "score": rng.randrange(11) if kind == "nps" else rng.randrange(1, 6),
               "occurred_at": format_rfc3339(min(at, end)), "segment": seg,
               "touchpoint": rng.choice(["support", "billing", "product"]),
               "channel": rng.choice(["email", "chat", "phone", "web"])}
        lines.append(orjson.dumps(doc))
        if rng.random() < 0.04:
            lines.append(lines[rng.randrange(max(0, len(lines) - 200), len(lines))])  # a retry
    path.write_bytes(b"\n".join(lines) + b"\n")
    return len(lines)


def produce_cli(w: Worker, path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "cxstream", "produce", "surveys", str(path)],
                            env=w.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


async def oracle_events(w: Worker) -> list[oracle.Ev]:
    """The produced responses with their real (partition, offset), read back from Kafka."""
    events = []
    for rec in await read_all(w.bootstrap, f"{w.prefix}surveys"):
        d = orjson.loads(rec.value)
        from cxstream.core.timefmt import parse_rfc3339

        events.append(oracle.Ev(rec.partition, rec.offset, d["event_id"], d["customer_id"],
                                d["survey"], d["score"], parse_rfc3339(d["occurred_at"]),
                                d["segment"], d["touchpoint"], d["channel"]))
    return events


async def check_against_oracle(w: Worker, events: list[oracle.Ev]) -> int:
    """Every segment, window and several instants equal the oracle (the harness's check),
    plus the single-segment endpoint, the API's errors and the CLI, on the same data."""
    checked = await assert_scores_match_oracle(w, events, HORIZON)
    good = oracle.accepted(events, HORIZON)
    stream_time = max(oracle.stream_times(events, HORIZON).values())
    top = stream_time - stream_time % MINUTE
    # One segment through its own endpoint, and a window reaching before retention.
    status, one = await w.get("/scores/plan:pro", window="7d", as_of=format_rfc3339(top + MINUTE))
    assert status == 200
    oracle.assert_matches(one, oracle.scores(good, "plan:pro", top + MINUTE - 7 * DAY, top + MINUTE))
    status, err = await w.get("/scores/all", window="30d", as_of=format_rfc3339(top - 2 * DAY))
    assert status == 422 and err["error"] == "out_of_retention"
    for path, params, code, error in [
        ("/scores/all", {"window": "2h"}, 400, "unknown_window"),
        ("/scores/all", {"window": "7d", "as_of": "yesterday"}, 400, "bad_as_of"),
        ("/scores/plan:nope", {"window": "7d"}, 404, "unknown_segment"),
        ("/scores/Plan-x", {"window": "7d"}, 400, "bad_segment"),
    ]:
        status, body = await w.get(path, **params)
        assert (status, body["error"]) == (code, error) and body["message"]
    # The CLI prints what the API answers.
    cli = subprocess.run([sys.executable, "-m", "cxstream", "scores", "--segment", "plan:pro",
                          "--window", "7d", "--as-of", format_rfc3339(top + MINUTE), "--json",
                          "--url", w.url], env=w.env(), capture_output=True, check=True)
    assert orjson.loads(cli.stdout) == one
    table = subprocess.run([sys.executable, "-m", "cxstream", "scores", "--window", "24h",
                            "--url", w.url], env=w.env(), capture_output=True, check=True)
    assert b"plan:pro" in table.stdout and b"NPS" in table.stdout
    return checked


async def check_dead_letters(w: Worker, events: list[oracle.Ev]) -> None:
    late = oracle.too_late(events, HORIZON)
    records = await read_all(w.bootstrap, f"{w.prefix}deadletter")
    got = {(d["source_partition"], d["source_offset"]) for d in map(lambda r: orjson.loads(r.value), records)
           if d["error_code"] == "too_late"}
    assert late and got == late


async def test_scores_equal_the_oracle(worker_factory, tmp_path: Path) -> None:
    w = worker_factory()
    w.start()
    await w.wait_ready()
    path = tmp_path / "surveys.jsonl"
    total = generate(path, 3000, seed=1)
    proc = produce_cli(w, path)
    out = (await asyncio.to_thread(proc.communicate))[0].decode()
    assert proc.returncode == 0, out
    assert f"sent {total} messages" in out
    await wait_drained(w.bootstrap, f"{w.prefix}cxstream", [f"{w.prefix}surveys"])
    events = await oracle_events(w)
    assert len(events) == total
    assert await check_against_oracle(w, events) > 100
    await check_dead_letters(w, events)


SLOW_SEEK = Path(__file__).parent / "slow_seek"


@pytest.mark.parametrize("slow_seek", [False, True], ids=["plain", "slow-seek"])
async def test_sigkill_mid_stream_gives_the_same_exact_results(worker_factory, tmp_path: Path,
                                                               slow_seek: bool) -> None:
    """`slow-seek` widens a Faust race at the end of the restart's rebalance (see
    `cxstream.worker.faust_patches`) that used to drop messages for good, one run in four."""
    w = worker_factory(extra_env=loading(SLOW_SEEK)) if slow_seek else worker_factory()
    w.start()
    await w.wait_ready()
    path = tmp_path / "surveys.jsonl"
    total = generate(path, 3000, seed=2)
    proc = produce_cli(w, path)
    await asyncio.to_thread(proc.communicate)
    await wait_for(lambda: _past(w, total * 0.4), 120, "40% of the stream processed")
    w.kill()
    w.start()
    await w.wait_ready(180)
    await wait_drained(w.bootstrap, f"{w.prefix}cxstream", [f"{w.prefix}surveys"])
    events = await oracle_events(w)
    assert await check_against_oracle(w, events) > 100
    await check_dead_letters(w, events)
    assert "never processed" not in w.log_path.read_text(errors="replace")


DROPPED_FETCH = Path(__file__).parent / "dropped_fetch"


async def test_records_dropped_before_the_first_commit_are_read_again(worker_factory,
                                                                      tmp_path: Path) -> None:
    """Faust drops records that arrive while its flow is stopped and seeks back to the
    committed offsets; with nothing committed yet that seek used to do nothing, so the first
    batch of each partition was never processed (seen when a second worker joined
    mid-stream). `dropped_fetch` makes the first fetch land in that state."""
    path = tmp_path / "surveys.jsonl"
    total = generate(path, 1000, seed=5)
    w = worker_factory(extra_env=loading(DROPPED_FETCH))
    # Produced before the worker starts: its first fetch returns records of every partition.
    proc = produce_cli(w, path)
    out, _ = await asyncio.to_thread(proc.communicate)
    assert proc.returncode == 0, out
    w.start()
    await w.wait_ready()
    # Lost records leave the partition lagging for good: 90 s is ample for 1 000 messages.
    await wait_drained(w.bootstrap, f"{w.prefix}cxstream", [f"{w.prefix}surveys"], timeout_s=90)
    events = await oracle_events(w)
    assert len(events) == total
    assert await check_against_oracle(w, events) > 100
    await check_dead_letters(w, events)


async def _past(w: Worker, n: float) -> bool:
    try:
        return await w.events_total() >= n
    except Exception:  # noqa: BLE001 - the worker may still be starting
        return False
