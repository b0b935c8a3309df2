"""Notifications isolated from the stream, on the real broker.

1. The notifier's intake keeps polling while a delivery hangs far past the consumer's
   `max.poll.interval.ms`: the group never throws it out, other partitions keep flowing, the
   hung partition is paused at its queue bound, and offsets are committed only behind
   alerts fully handled.
2. A worker with every channel on (signed webhook, Slack, e-mail to local receivers) is fed
   hostile alert records straight onto the alert topic (ids, comments and owner addresses
   holding line breaks, `<!channel>`, 10 KB of text; records that are not alerts) among
   normal ones: its process never changes and stays healthy, every normal alert is
   delivered on every channel, and every failed delivery is counted in
   `cxstream_notifications_failed_total` and is on the notification dead-letter topic.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from cxstream import metrics
from cxstream.core.timefmt import format_rfc3339
from cxstream.notify.intake import Intake

from .harness import Worker, produce, read_all, unique_prefix, wait_for
from .receivers import SECRET, HttpReceiver, SmtpReceiver

NOW = int(time.time() * 1000)


async def _ready(check: Any) -> Any:
    return check()


# -- 1. the intake, on its own consumer ---------------------------------------------------------
async def test_a_delivery_hanging_past_max_poll_interval_never_stalls_the_group(
        kafka_bootstrap: str) -> None:
    prefix = unique_prefix()
    topic, group = f"{prefix}alerts", f"{prefix}notifier"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    per_partition = 30
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False,
        auto_offset_reset="earliest", max_poll_interval_ms=3000, session_timeout_ms=6000,
        heartbeat_interval_ms=1000, rebalance_timeout_ms=6000)
    await consumer.start()
    hang = asyncio.Event()
    handled: dict[int, list[int]] = {0: [], 1: []}
    assigned: list[set[int]] = []
    revoked: list[set[int]] = []
    paused_seen: list[int] = []

    async def handle(rec: Any) -> None:
        if rec.partition == 0 and rec.offset == 0:
            await hang.wait()  # a receiver that does not answer
        handled[rec.partition].append(rec.offset)

    async def restore(partitions: set[int]) -> None:
        assigned.append(partitions)

    def forget(partitions: set[int]) -> None:
        if partitions:  # the first join revokes the empty set
            revoked.append(partitions)

    intake = Intake(consumer, topic, handle, restore, forget, queue_size=5)
    before = metrics.NOTIFIER_ERRORS.labels("commit_failed")._value.get()  # noqa: SLF001
    task = asyncio.create_task(intake.run())
    try:
        await wait_for(lambda: _ready(lambda: assigned), 60, "the partitions to be assigned")
        await _produce_to(kafka_bootstrap, topic, per_partition)

        # Partition 1 flows while partition 0's first alert hangs ...
        await wait_for(lambda: _ready(lambda: len(handled[1]) == per_partition), 60,
                       "partition 1 to be handled")

        async def paused() -> bool:
            if TopicPartition(topic, 0) in consumer.paused():
                paused_seen.append(intake.lanes[TopicPartition(topic, 0)].pending)
            return bool(paused_seen)

        await wait_for(paused, 30, "the hung partition to be paused at its bound")
        # ... for three times max.poll.interval.ms, during which the group must keep us.
        hung_until = time.monotonic() + 9.0
        while time.monotonic() < hung_until:
            assert not task.done(), task.exception()
            await asyncio.sleep(0.5)
        assert handled[0] == [] and revoked == [] and assigned == [{0, 1}]
        assert max(paused_seen) <= 5  # never more than queue_size read ahead
        committed = await consumer.committed(TopicPartition(topic, 0))
        assert committed in (None, 0)  # nothing passed the hung alert
        hang.set()
        await wait_for(lambda: _ready(lambda: len(handled[0]) == per_partition), 60,
                       "partition 0 to be handled once the receiver answers")
        assert handled[0] == list(range(per_partition))  # in offset order, each once

        async def all_committed() -> bool:
            return all([await consumer.committed(TopicPartition(topic, p)) == per_partition
                        for p in (0, 1)])

        await wait_for(all_committed, 30, "every offset to be committed")
        assert revoked == [] and not task.done()
        after = metrics.NOTIFIER_ERRORS.labels("commit_failed")._value.get()  # noqa: SLF001
        assert after == before
    finally:
        hang.set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await consumer.stop()


async def _produce_to(bootstrap: str, topic: str, n: int) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for i in range(n):
            for p in (0, 1):
                await producer.send_and_wait(topic, f"p{p}-{i}".encode(), partition=p)
    finally:
        await producer.stop()


# -- 2. a worker fed hostile alerts ------------------------------------------------------------
def routing(path: Path, http: HttpReceiver, smtp: SmtpReceiver) -> Path:
    path.write_text(f'''
max_attempts = 2
timeout = "5s"
backoff_base_seconds = 0.05
queue_size = 20

[channels.hook]
type = "webhook"
url = "{http.url}/hook/ok"
secret = "{SECRET}"
allow_private = true

[channels.slack]
type = "slack"
url = "{http.url}/slack"
allow_private = true

[channels.mail]
type = "email"
host = "127.0.0.1"
port = {smtp.port}
from = "cxstream@example.com"

[[routes]]
owner = "All Channels"
channel = "hook"

[[routes]]
owner = "All Channels"
channel = "slack"

[[routes]]
owner = "All Channels"
channel = "mail"
''')
    return path


def alert(n: int, **over: Any) -> dict[str, Any]:
    doc = {"alert_id": f"alert-{n:04d}", "kind": "detractor", "customer_id": f"cust-{n}",
           "response_id": f"r-{n}", "score": 2, "previous_category": "promoter",
           "occurred_at": format_rfc3339(NOW - 60_000), "detected_at": format_rfc3339(NOW),
           "segment": {"plan": "pro"}, "touchpoint": "support", "channel": "chat",
           "comment": "call me back", "recent_interactions": [],
           "owner": {"name": "All Channels", "email": f"owner{n}@example.com"}}
    return {**doc, **over}


BREAKS = ["\n", "\x85", "\u2028"]
BIG = "<!channel> " + "x" * 10_240


def hostile() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[bytes]]:
    """(alerts every channel must deliver, alerts whose e-mail must fail, records that are
    not alerts)."""
    deliverable, bad_mail, not_alerts = [], [], []
    n = 1000
    for brk in BREAKS:
        deliverable.append(alert(n := n + 1, customer_id=f"cust{brk}{n}"))
        deliverable.append(alert(n := n + 1, comment=f"first{brk}<!channel> second",
                                 touchpoint=f"tp{brk}x"))
        bad_mail.append(alert(n := n + 1, owner={"name": "All Channels",
                                                  "email": f"owner{brk}@example.com"}))
    deliverable.append(alert(n := n + 1, customer_id="c-" + "y" * 200, comment=BIG,
                             segment={"plan": BIG}, score=BIG))
    deliverable.append(alert(n := n + 1, customer_id=f"<!channel>{n}", comment=BIG))
    not_alerts += [b"\xff not json", b"[1, 2]",
                   orjson.dumps(alert(n := n + 1, alert_id="id\nwith-break")),
                   orjson.dumps(alert(n := n + 1, alert_id="id\x85nel")),
                   orjson.dumps(alert(n := n + 1, owner="All Channels"))]
    return deliverable, bad_mail, not_alerts


async def test_hostile_alerts_never_stop_the_worker_and_every_failure_is_counted(
        worker_factory: Any, http: HttpReceiver, tmp_path: Path) -> None:
    smtp = SmtpReceiver()
    smtp.start()
    try:
        await _hostile_run(worker_factory, http, smtp, tmp_path)
    finally:
        smtp.stop()


async def _hostile_run(worker_factory: Any, http: HttpReceiver, smtp: SmtpReceiver,
                       tmp_path: Path) -> None:
    w: Worker = worker_factory(extra_env={
        "CXSTREAM_NOTIFY_CONFIG": str(routing(tmp_path / "notify.toml", http, smtp))})
    w.start()
    await w.wait_ready()
    assert w.proc is not None
    pid = w.proc.pid
    t = w.prefix
    normal = [alert(i) for i in range(40)]
    deliverable, bad_mail, not_alerts = hostile()
    records: list[tuple[bytes | None, bytes]] = []
    for i, doc in enumerate([*normal, *deliverable, *bad_mail]):
        records.append((str(doc["customer_id"]).encode(), orjson.dumps(doc)))
        if i % 7 == 0 and not_alerts:  # the hostile records between the normal ones
            records.append((b"junk", not_alerts.pop()))
    records += [(b"junk", v) for v in not_alerts]
    await produce(w.bootstrap, f"{t}alerts", records)

    every = [*normal, *deliverable, *bad_mail]
    webhook_ids = {a["alert_id"] for a in every}
    await wait_for(lambda: _ready(lambda: set(http.accepted) >= webhook_ids), 180,
                   "every alert's webhook")
    await wait_for(lambda: _ready(lambda: len(http.slack) >= len(every)), 60, "Slack messages")
    mailed = len(normal) + len(deliverable)
    await wait_for(lambda: _ready(lambda: len(smtp.mailbox.messages) >= mailed), 60, "e-mails")
    dead = await wait_for(lambda: _docs(w, f"{t}notifications.deadletter", 8), 60,
                          "the notification dead letters")

    # The worker never went down: same process, alive, healthy.
    assert w.proc.pid == pid and w.proc.poll() is None and w.starts == 1, w.log_tail()
    status, _ = await w.get("/healthz")
    assert status == 200

    # Every alert delivered once by webhook (signed) and by Slack; e-mail to every valid owner.
    assert http.bad_signatures == 0
    assert all(len(http.accepted[a]) == 1 for a in webhook_ids)
    assert len(http.slack) == len(every)
    assert sorted(r for rcpt, _ in smtp.mailbox.messages for r in rcpt) == \
        sorted(a["owner"]["email"] for a in [*normal, *deliverable])
    for _, msg in smtp.mailbox.messages:
        subject = str(msg["Subject"])
        assert subject.strip().startswith("[cxstream] Customer") and len(subject) <= 220
        assert not any(brk in subject for brk in BREAKS)
    for message in http.slack:
        text = orjson.dumps(message).decode()
        assert "<!channel>" not in text
        for block in message["blocks"]:
            for obj in [block.get("text"), *block.get("fields", []), *block.get("elements", [])]:
                if obj:
                    limit = {"header": 150, "section": 3000, "context": 2000}[block["type"]]
                    assert len(obj["text"]) <= (2000 if obj in block.get("fields", []) else limit)

    # Every failure counted and dead-lettered: the bad owner addresses (e-mail only) and the
    # records that are not alerts.
    expected = {("mail", "bad_alert"): len(bad_mail), ("-", "bad_alert"): 5}
    assert sorted((d["channel"] or "-", d["code"]) for d in dead) == \
        sorted(k for k, n in expected.items() for _ in range(n))
    assert {d["alert_id"] for d in dead if d["channel"] == "mail"} == \
        {a["alert_id"] for a in bad_mail}
    assert all(d["source"]["topic"] == f"{t}alerts" for d in dead)

    async def counted() -> dict[tuple[str, str], float] | None:
        m = await w.metrics()
        got = {(dict(k)["channel"], dict(k)["reason"]): v for (name, k), v in m.items()
               if name == "cxstream_notifications_failed_total"}
        return got if got == expected else None

    await wait_for(counted, 30, f"cxstream_notifications_failed_total == {expected}")
    m = await w.metrics()
    loop_errors = {dict(k)["reason"]: v for (name, k), v in m.items()
                   if name == "cxstream_notifier_errors_total"}
    assert loop_errors == {"commit_failed": 0, "kafka": 0, "error": 0}, w.log_tail()
    log = w.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "call me back" not in log and "owner1@" not in log


async def _docs(w: Worker, topic: str, at_least: int) -> list[dict[str, Any]] | None:
    docs = [orjson.loads(r.value) for r in await read_all(w.bootstrap, topic)]
    return docs if len(docs) >= at_least else None
