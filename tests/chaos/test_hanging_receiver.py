"""A receiver that hangs while a second worker joins the group.

Every delivery to one webhook never gets an answer. Its alerts all sit on one alert
partition; the other partitions' alerts keep being delivered while it hangs. A second worker
then joins, so the notifier group rebalances in the middle of hanging deliveries (their
lanes are cut short). Neither worker exits or restarts its notifier, every normal alert is
delivered, repeats stay within at least once (an alert repeats only when a rebalance cut it
between its delivery and its record), and every hanging alert ends on the notification
dead-letter topic as a timeout.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka.partitioner import DefaultPartitioner

from cxstream.core.timefmt import format_rfc3339
from tests.integration.harness import (
    Worker,
    metric_samples,
    produce,
    read_all,
    split_between,
    wait_drained,
    wait_for,
)
from tests.integration.receivers import SECRET, HttpReceiver

PARTITIONS = 4
HUNG_PARTITION = 0
NOW = int(time.time() * 1000)


def routing(path: Path, http: HttpReceiver) -> Path:
    path.write_text(f'''
max_attempts = 2
timeout = "4s"
backoff_base_seconds = 0.05
queue_size = 10
default = "ok"

[channels.ok]
type = "webhook"
url = "{http.url}/hook/ok"
secret = "{SECRET}"
allow_private = true

[channels.hang]
type = "webhook"
url = "{http.url}/hook/hang"
secret = "{SECRET}"
allow_private = true

[[routes]]
owner = "Hang"
channel = "hang"
''')
    return path


def customers(prefix: str, n: int, partitions: set[int]) -> list[str]:
    """`n` customer ids whose alerts land on `partitions` (the producer's partitioner)."""
    pick, out, i = DefaultPartitioner(), [], 0
    everything = list(range(PARTITIONS))
    while len(out) < n:
        cid = f"{prefix}-{i}"
        if pick(cid.encode(), everything, everything) in partitions:
            out.append(cid)
        i += 1
    return out


def alert(cid: str, owner: str = "Olga") -> tuple[bytes, bytes]:
    doc = {"alert_id": f"alert-{cid}", "kind": "detractor", "customer_id": cid,
           "response_id": f"r-{cid}", "score": 1, "previous_category": "passive",
           "occurred_at": format_rfc3339(NOW - 60_000), "detected_at": format_rfc3339(NOW),
           "segment": {"plan": "pro"}, "recent_interactions": [], "owner": {"name": owner}}
    return cid.encode(), orjson.dumps(doc)


async def _ready(check: Any) -> Any:
    return check()


async def test_a_hanging_receiver_while_a_worker_joins(worker_factory: Any, http: HttpReceiver,
                                                       tmp_path: Path) -> None:
    env = {"CXSTREAM_NOTIFY_CONFIG": str(routing(tmp_path / "notify.toml", http))}
    a: Worker = worker_factory(name="a", extra_env=env, partitions=PARTITIONS)
    b: Worker = worker_factory(name="b", extra_env=env, partitions=PARTITIONS)
    a.start()
    await a.wait_ready()
    t = a.prefix
    others = set(range(PARTITIONS)) - {HUNG_PARTITION}
    hung = customers("hung", 6, {HUNG_PARTITION})
    behind = customers("behind", 20, {HUNG_PARTITION})  # queued behind the hanging ones
    free = customers("free", 120, others)
    late = customers("late", 120, set(range(PARTITIONS)))
    await produce(a.bootstrap, f"{t}alerts",
                  [*(alert(c, "Hang") for c in hung), *(alert(c) for c in [*behind, *free])])

    # While partition 0 hangs, the other partitions' alerts are all delivered.
    await wait_for(lambda: _ready(lambda: http.hanging >= 1), 60, "the receiver to hang")
    free_ids = {f"alert-{c}" for c in free}
    await wait_for(lambda: _ready(lambda: set(http.accepted) >= free_ids), 60,
                   "the other partitions' alerts, while one hangs")
    assert not any(f"alert-{c}" in http.accepted for c in behind)  # in order per partition

    # A second worker joins in the middle of the hanging deliveries.
    hanging_before = http.hanging
    b.start()
    await b.wait_ready()
    await wait_for(lambda: split_between(a, b, PARTITIONS), 120, "the group to settle on two")
    await produce(a.bootstrap, f"{t}alerts", [alert(c) for c in late])

    wanted = {f"alert-{c}" for c in [*behind, *free, *late]}
    await wait_for(lambda: _ready(lambda: set(http.accepted) >= wanted), 300,
                   "every normal alert to be delivered")
    hung_ids = {f"alert-{c}" for c in hung}

    async def dead_lettered() -> bool:
        docs = [orjson.loads(r.value) for r in
                await read_all(a.bootstrap, f"{t}notifications.deadletter")]
        return {d["alert_id"] for d in docs} >= hung_ids and docs

    dead = await wait_for(dead_lettered, 240, "every hanging alert to be dead-lettered")
    await wait_drained(a.bootstrap, f"{t}cxstream.notifier", [f"{t}alerts"], timeout_s=240)

    for w in (a, b):
        assert w.proc is not None and w.proc.poll() is None and w.starts == 1, w.log_tail()
        errors = metric_samples(await w.metrics(), "cxstream_notifier_errors_total")
        restarts = {dict(k)["reason"]: v for k, v in errors.items()}
        assert restarts["kafka"] == restarts["error"] == 0, (w.port, w.log_tail())
    # Every hanging alert had its two attempts (more when a rebalance cut one short).
    assert http.hanging >= 2 * len(hung) and http.hanging >= hanging_before
    assert {d["code"] for d in dead} == {"timeout"} and {d["channel"] for d in dead} == {"hang"}
    assert http.bad_signatures == 0
    # At least once: each repeat is an alert a rebalance cut between delivery and record; at
    # most one in flight per partition and rebalance (two rebalances here: the join, and
    # possibly a second while the group settles).
    repeats = {aid: len(v) for aid, v in http.accepted.items() if len(v) > 1}
    assert sum(n - 1 for n in repeats.values()) <= 2 * PARTITIONS, repeats
    assert set(http.accepted) == wanted  # nothing else, and no hanging alert accepted
    print(f"{len(wanted)} alerts delivered ({len(repeats)} repeated), {len(dead)} dead letters "
          f"for {len(hung)} hanging alerts, {http.hanging} hanging calls")
