"""A receiver that hangs for 8 minutes while a second worker joins, with the default timings.

The issue's acceptance point, literally and end to end: survey responses go in, the workers
turn them into detractor alerts, and the notifier delivers them. The webhook of one owner's
customers holds every request for `HANG_S` from its first one, then answers again; a wave of
responses goes in every minute meanwhile, and a second worker joins 2 minutes into the hang,
so both consumer groups rebalance in the middle of hanging deliveries. Nothing is shortened:
the routing file sets no timing (a 10 s limit per attempt, 5 attempts, backoff from 0.5 s)
and the workers keep the product's session timeout.

Shown: no worker exits, restarts or restarts its notifier, and no consumer is thrown out of
its group; every wave's alerts are on the alert topic, once each, within a minute, and the
other owners' notifications are delivered within a bound; the hanging channel's alerts end,
in offset order, dead-lettered as `timeout` after exactly 5 attempts spaced by the limit and
the backoff while the hang lasts, and delivered once it is over; a delivery repeats only
when a rebalance cut it between its delivery and its record (at least once).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from cxstream.config.settings import SETTINGS
from cxstream.core.alert import alert_id
from cxstream.core.notification import NotifyConfig
from cxstream.core.timefmt import format_rfc3339
from cxstream.notify import routing
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

# Same partition count, and the customer ids the producers put on chosen partitions.
from .test_hanging_receiver import PARTITIONS, _ready, customers

HANG_S = 480.0  #: how long the receiver hangs, from its first request
WAVE_EVERY_S = 60.0
WAVES = int(HANG_S // WAVE_EVERY_S)  #: one wave a minute, all of them inside the hang
JOIN_AT_S = 120.0  #: the second worker starts this long into the hang
HUNG_PARTITION = 0  #: the hanging owner's customers (so their alerts) are all here
HUNG_PER_WAVE = 2  #: more than one a minute: the hung partition always has one waiting
NORMAL_PER_WAVE = 24  #: customers of other owners, on the other partitions
ALERT_BOUND_S = 60.0  #: a wave's alerts are on the alert topic within this, from producing it
DELIVERY_BOUND_S = 90.0  #: and its other owners' notifications delivered within this
SLACK_S = 2.5  #: a loaded worker's lateness per attempt (its loop also runs the stream)
#: Lines of a consumer put out of its group (aiokafka's coordinator) or of a notifier restart.
THROWN_OUT = ("Heartbeat session expired", "member_id was not recognized",
              "generation id is not", "LeaveGroup", "the notifier stopped with")


def routing_file(path: Path, http: HttpReceiver) -> Path:
    """Two webhooks and an owner route; no timing, so the notifier runs on its defaults."""
    path.write_text(f'''
default = "ok"

[channels.ok]
type = "webhook"
url = "{http.url}/hook/ok"
secret = "{SECRET}"
allow_private = true

[channels.hang]
type = "webhook"
url = "{http.url}/hook/stall"
secret = "{SECRET}"
allow_private = true

[[routes]]
owner = "Hang"
channel = "hang"
''')
    return path


def profile(cid: str, owner: str) -> tuple[bytes, bytes]:
    return cid.encode(), orjson.dumps({
        "customer_id": cid, "segment": {"plan": "pro"}, "updated_at": format_rfc3339(
            int(time.time() * 1000) - 86_400_000),
        "owner": {"name": owner, "email": f"{owner.lower()}@example.com"}})


def response(cid: str, score: int) -> tuple[bytes, bytes]:
    """The customer's first response: a detractor score makes one alert."""
    return cid.encode(), orjson.dumps({
        "event_id": f"e-{cid}", "customer_id": cid, "survey": "nps", "score": score,
        "comment": "why", "occurred_at": format_rfc3339(int(time.time() * 1000) - 1000)})


@dataclasses.dataclass
class AlertTail:
    """Follows the alert topic from its beginning: when each alert id was first seen
    (monotonic)."""

    bootstrap: str
    topic: str
    seen: dict[str, float] = dataclasses.field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                    isolation_level="read_committed")
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in range(PARTITIONS)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while True:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for rec in records:
                        self.seen.setdefault(orjson.loads(rec.value)["alert_id"],
                                             time.monotonic())
        finally:
            await consumer.stop()

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def _at(when: float) -> None:
    """Wait until the monotonic instant `when` (a schedule, not a wait for a condition)."""
    await asyncio.sleep(max(0.0, when - time.monotonic()))


def _session_timeout_default() -> str:
    return next(s.default for s in SETTINGS if s.attr == "session_timeout")


def _notifier_generations(w: Worker, group: str) -> set[int]:
    """The generations of the notifier group this worker joined (aiokafka logs each join)."""
    pattern = re.compile(rf"Joined group '{re.escape(group)}' \(generation (\d+)\)")
    return {int(m.group(1)) for m in pattern.finditer(w.log_path.read_text(errors="replace"))}


async def test_a_receiver_hanging_8_minutes_while_a_worker_joins(
        worker_factory: Any, http: HttpReceiver, tmp_path: Path) -> None:
    began = time.monotonic()
    http.stall_s = HANG_S
    path = routing_file(tmp_path / "notify.toml", http)
    cfg = routing.load(path)
    defaults = NotifyConfig(channels={})
    timing = ("max_attempts", "timeout_s", "backoff_base_s", "backoff_cap_s", "queue_size")
    assert all(getattr(cfg, k) == getattr(defaults, k) for k in timing)  # nothing shortened
    # The harness shortens the session timeout (fast failover in the crash tests): this test
    # gives the workers the product's default back, and sets nothing else.
    env = {"CXSTREAM_NOTIFY_CONFIG": str(path),
           "CXSTREAM_SESSION_TIMEOUT": _session_timeout_default()}
    a: Worker = worker_factory(name="a", extra_env=env, partitions=PARTITIONS)
    b: Worker = worker_factory(name="b", extra_env=env, partitions=PARTITIONS)
    t = a.prefix
    notifier_group = f"{t}cxstream.notifier"
    a.start()
    await a.wait_ready()
    assert a.proc is not None
    pid_a = a.proc.pid

    others = set(range(PARTITIONS)) - {HUNG_PARTITION}
    hung = [customers(f"hang{k}", HUNG_PER_WAVE, {HUNG_PARTITION}) for k in range(WAVES)]
    normal = [customers(f"norm{k}", NORMAL_PER_WAVE, others) for k in range(WAVES)]
    await produce(a.bootstrap, f"{t}customers",
                  [*(profile(c, "Hang") for w in hung for c in w),
                   *(profile(c, "Olga") for w in normal for c in w)])
    await wait_drained(a.bootstrap, f"{t}cxstream", [f"{t}customers"], timeout_s=120)
    ids = {c: alert_id(c, f"e-{c}") for w in [*hung, *normal] for c in w}
    hung_ids = {ids[c] for w in hung for c in w}
    tail = AlertTail(a.bootstrap, f"{t}alerts")
    tail.start()

    latency: dict[int, tuple[float, float]] = {}
    joined: dict[str, float] = {}

    async def wave(k: int, at: float) -> None:
        await _at(at)
        sent = time.monotonic()
        await produce(a.bootstrap, f"{t}surveys",
                      [response(c, k % 7) for c in [*hung[k], *normal[k]]])
        mine = {ids[c] for c in [*hung[k], *normal[k]]}
        await wait_for(lambda: _ready(lambda: mine <= tail.seen.keys()), ALERT_BOUND_S,
                       f"wave {k}'s {len(mine)} alerts on the alert topic")
        delivered = {ids[c] for c in normal[k]}
        await wait_for(lambda: _ready(lambda: delivered <= http.accepted.keys()),
                       DELIVERY_BOUND_S - (time.monotonic() - sent),
                       f"wave {k}'s other owners' notifications delivered")
        latency[k] = (max(tail.seen[i] for i in mine) - sent,
                      max(http.accepted[i][0]["at"] for i in delivered) - sent)

    async def join(at: float) -> None:
        await _at(at)
        b.start()
        joined["started"] = time.monotonic()
        await b.wait_ready(180)
        await wait_for(lambda: split_between(a, b, PARTITIONS), 180,
                       "the stream's partitions split between the two workers")
        await wait_for(lambda: _ready(lambda: len(_notifier_generations(b, notifier_group))),
                       120, "worker b's notifier to join its group")
        joined["settled"] = time.monotonic()

    async def watchdog() -> None:
        while True:
            for w in (a, b):
                if w.proc is not None and w.proc.poll() is not None:
                    raise AssertionError(f"worker {w.port} exited with {w.proc.returncode}:\n"
                                         f"{w.log_tail()}")
            await asyncio.sleep(1.0)

    guard = asyncio.create_task(watchdog())
    start = time.monotonic()
    first = asyncio.create_task(wave(0, start))
    try:
        await wait_for(lambda: _ready(lambda: http.stall_until is not None), 60,
                       "the first request to the hanging webhook")
        assert http.stall_until is not None
        deadline = http.stall_until
        hang_start = deadline - HANG_S

        async def everything() -> None:
            await asyncio.gather(first, join(hang_start + JOIN_AT_S),
                                 *(wave(k, start + k * WAVE_EVERY_S) for k in range(1, WAVES)))

        work = asyncio.create_task(everything())
        await asyncio.wait({work, guard}, return_when=asyncio.FIRST_COMPLETED)
        if guard.done():
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            guard.result()
        await work
        assert joined["settled"] < deadline, "the group settled after the hang"

        # Once the hang is over, every hanging alert is dead-lettered or delivered.
        async def dead_letters() -> list[dict[str, Any]]:
            return [orjson.loads(r.value) for r in
                    await read_all(a.bootstrap, f"{t}notifications.deadletter")]

        async def all_ended() -> list[dict[str, Any]] | None:
            dead = await dead_letters()
            done = {d["alert_id"] for d in dead} | {i for i in hung_ids if i in http.accepted}
            return dead if done >= hung_ids else None

        await _at(deadline)
        dead = await wait_for(all_ended, 120, "every hanging alert to end, once the hang is over",
                              interval_s=2.0)
        await wait_drained(a.bootstrap, notifier_group, [f"{t}alerts"], timeout_s=120)
        await wait_drained(a.bootstrap, f"{t}cxstream", [f"{t}surveys", f"{t}customers"],
                           timeout_s=120)
    finally:
        guard.cancel()
        first.cancel()
        await tail.stop()

    # -- no worker exited, restarted, or left a group --------------------------------------
    assert a.proc.pid == pid_a and a.starts == b.starts == 1
    metrics = {w.port: await w.metrics() for w in (a, b)}
    for w in (a, b):
        assert w.proc is not None and w.proc.poll() is None, w.log_tail()
        errors = metric_samples(metrics[w.port], "cxstream_notifier_errors_total")
        restarts = {dict(k)["reason"]: v for k, v in errors.items()}
        assert restarts["kafka"] == restarts["error"] == 0, (w.port, w.log_tail())
        log = w.log_path.read_text(errors="replace")
        out = [line for line in log.splitlines() if any(m in line for m in THROWN_OUT)]
        assert not out, (w.port, out)
    generations = set().union(*(_notifier_generations(w, notifier_group) for w in (a, b)))
    rebalances = max(generations) - min(generations)
    assert rebalances >= 1, generations  # b's join rebalanced the notifier group

    # -- alerts: every one on the alert topic exactly once, each wave's within the bound ------
    # No worker crashed: a rebalance hands a partition over only after its batch in hand is
    # acknowledged and committed, so no response is processed twice and no alert repeats (a
    # repeat would carry the same alert_id: counting ids finds it).
    records = await read_all(a.bootstrap, f"{t}alerts")
    docs = [orjson.loads(r.value) for r in records]
    counts = Counter(d["alert_id"] for d in docs)
    assert set(counts) == set(ids.values()), "alerts missing or unexpected"
    assert [i for i, n in counts.items() if n > 1] == [], "an alert_id twice on the alert topic"
    assert sorted(latency) == list(range(WAVES))
    on_hung = {rec.offset: d["alert_id"] for rec, d in zip(records, docs)
               if d["alert_id"] in hung_ids}
    assert all(r.partition == HUNG_PARTITION for r, d in zip(records, docs)
               if d["alert_id"] in hung_ids)
    assert all(r.partition != HUNG_PARTITION for r, d in zip(records, docs)
               if d["alert_id"] not in hung_ids)
    assert all(d["owner"]["name"] == ("Hang" if d["alert_id"] in hung_ids else "Olga")
               for d in docs)

    # -- the hanging channel: dead letters while it hangs, deliveries after ----------------
    timeout, attempts = cfg.timeout_s, cfg.max_attempts
    assert dead and {d["code"] for d in dead} == {"timeout"} and {d["channel"] for d in dead} \
        == {"hang"}, dead
    assert all(d["attempts"] == attempts and f"within {timeout:g}s" in d["reason"]
               and d["source"]["partition"] == HUNG_PARTITION for d in dead), dead
    dead_ids = [d["alert_id"] for d in dead]
    stalled = [i for i in hung_ids if i in http.accepted]
    assert all(e["at"] >= deadline for i in stalled for e in http.accepted[i])
    # Per partition in offset order: the dead-lettered alerts come first, then the delivered.
    order = [on_hung[o] for o in sorted(on_hung)]
    ended = ["dead" if i in dead_ids else "delivered" for i in order]
    assert ended == sorted(ended), ended
    assert not set(dead_ids) & set(stalled), "a hanging alert dead-lettered and delivered"
    # Each dead letter's last `attempts` requests: each one the limit after the one before,
    # plus that retry's backoff (uniform up to base * 2^(k-1), capped), all within the hang.
    arrivals: dict[str, list[float]] = {}
    for at, mode, aid in http.arrivals:
        if mode == "stall":
            arrivals.setdefault(aid, []).append(at)
    gaps: list[float] = []
    for aid in dead_ids:
        run = arrivals[aid][-attempts:]
        assert len(run) == attempts and run[-1] < deadline - timeout + SLACK_S, aid
        for k, gap in enumerate((y - x for x, y in zip(run, run[1:])), start=1):
            most = timeout + min(cfg.backoff_cap_s, cfg.backoff_base_s * 2 ** (k - 1))
            assert timeout - 1.0 <= gap <= most + SLACK_S, (aid, k, gap, run)
            gaps.append(gap)
    # How many fit in the hang: one lane works the hung partition, an alert at a time, and
    # always has one waiting. A dead letter takes `attempts` limits at least, and at most the
    # backoffs and the slack more; each rebalance cuts at most one of them short.
    per_alert = attempts * (timeout + SLACK_S) + sum(
        min(cfg.backoff_cap_s, cfg.backoff_base_s * 2 ** (k - 1)) for k in range(1, attempts))
    most = math.floor(HANG_S / (attempts * timeout))
    least = math.floor((HANG_S - timeout) / per_alert) - rebalances
    assert least <= len(dead) <= most, (len(dead), least, most, rebalances)

    # -- deliveries: at least once, signed, counted -----------------------------------------
    # A delivery repeats only when a rebalance cut it between its delivery and its record in
    # notifications.sent; each rebalance cuts at most one alert per partition.
    repeats = {aid: len(v) - 1 for aid, v in http.accepted.items() if len(v) > 1}
    repeats.update({aid: n - 1 for aid, n in Counter(dead_ids).items() if n > 1})
    assert sum(repeats.values()) <= rebalances * PARTITIONS, repeats
    assert all(n <= rebalances for n in repeats.values()), repeats
    normal_ids = set(ids.values()) - hung_ids
    assert set(http.accepted) == normal_ids | set(stalled)
    assert http.bad_signatures == 0

    def total(name: str, **labels: str) -> float:
        return sum(v for m in metrics.values() for k, v in metric_samples(m, name).items()
                   if labels.items() <= dict(k).items())

    assert total("cxstream_notifications_total", channel="hang", outcome="failed") == len(dead)
    assert total("cxstream_notifications_failed_total", channel="hang", reason="timeout") \
        == len(dead)
    for channel, mode in (("hang", "stall"), ("ok", "ok")):
        accepted = sum(1 for v in http.accepted.values() for e in v if e["mode"] == mode)
        assert total("cxstream_notifications_total", channel=channel, outcome="delivered") \
            == accepted, channel

    alert_s = max(x for x, _ in latency.values())
    delivery_s = max(y for _, y in latency.values())
    print(f"\n{len(docs)} alerts in {WAVES} waves (slowest wave {alert_s:.1f}s on the topic, "
          f"{delivery_s:.1f}s delivered), {sum(len(v) for v in http.accepted.values())} "
          f"deliveries ({sum(repeats.values())} repeats), {len(dead)} dead letters "
          f"(bounds {least}..{most}) and {len(stalled)} delivered after the hang of "
          f"{len(hung_ids)} hanging alerts, {http.stalled} hanging calls "
          f"({http.abandoned} given up), attempts {min(gaps):.1f}-{max(gaps):.1f}s apart, "
          f"{rebalances} notifier rebalance(s), b started {joined['started'] - hang_start:.0f}s "
          f"into the hang and settled {joined['settled'] - joined['started']:.0f}s later, "
          f"{time.monotonic() - began:.0f}s in all")
