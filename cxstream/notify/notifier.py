"""The notifier: alerts topic → success managers, in its own consumer group.

Why not a Faust agent on the same consumer: a receiver that hangs would fill that agent's
buffer and stall the consumer that scoring and alerting share. Here a slow receiver only
delays notifications. Delivery state (recent alert ids and the last notification time per
customer) lives in the compacted topic `<prefix>notifications.sent`, co-partitioned with
the alerts, and is reloaded for the partitions this worker is assigned.

Order per alert: deliver (with retries) → record in `notifications.sent` (acknowledged) →
commit the alert's offset. A crash between delivery and record repeats that delivery with
the same `webhook-id` / `Idempotency-Key`, so a deduplicating receiver accepts it once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from cxstream import metrics
from cxstream.core.notification import NotifyConfig, backoff_s, in_cooldown, redact, route
from cxstream.core.timefmt import format_rfc3339, parse_rfc3339
from cxstream.kafka.security import client_kwargs
from cxstream.kafka.retry import until_acknowledged
from cxstream.notify.senders import Attempt, new_session, send_email, send_slack, send_webhook
from cxstream.config.settings import Settings
from cxstream.kafka.topics import Topics

log = logging.getLogger(__name__)
RECENT_IDS = 50


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, notifier: "Notifier") -> None:
        self.notifier = notifier

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.notifier.forget({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.notifier.restore({tp.partition for tp in assigned})


class Notifier:
    def __init__(self, settings: Settings, cfg: NotifyConfig, *, seed: int | None = None) -> None:
        self.settings = settings
        self.cfg = cfg
        self.topics = Topics(settings.topic_prefix)
        self.state: dict[str, dict[str, Any]] = {}  # customer_id -> {"ids": [...], "last": ms}
        self.owned: set[int] = set()
        self.rng = random.Random(seed)
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.session: aiohttp.ClientSession | None = None  # public addresses only
        self.lab_session: aiohttp.ClientSession | None = None  # channels with allow_private

    # -- state ------------------------------------------------------------------------------
    def forget(self, partitions: set[int]) -> None:
        self.owned -= partitions
        if not self.owned:
            self.state.clear()

    async def restore(self, partitions: set[int]) -> None:
        """Reload delivery state of newly assigned partitions from the compacted topic."""
        new = partitions - self.owned
        self.owned |= partitions
        if not new:
            return
        reader = AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap, enable_auto_commit=False,
                                  **client_kwargs(self.settings))
        await reader.start()
        try:
            tps = [TopicPartition(self.topics.notifications_sent, p) for p in sorted(new)]
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            end = await reader.end_offsets(tps)
            while [tp for tp in tps if await reader.position(tp) < end[tp]]:
                for records in (await reader.getmany(timeout_ms=1000)).values():
                    for rec in records:
                        if rec.value is not None:
                            self.state[rec.key.decode()] = orjson.loads(rec.value)
        finally:
            await reader.stop()
        log.info("notifier restored delivery state for partitions %s", sorted(new))

    # -- loop -------------------------------------------------------------------------------
    async def run(self) -> None:
        """Consume the alert topic and notify, until cancelled; the notifier's main loop.

        Joins the consumer group `<group_id>.notifier` (its own, so a slow receiver never
        holds back the worker's processing), reading committed records only and starting
        from the earliest offset when the group has none. On each assignment the delivery
        state of the new partitions is reloaded from `notifications.sent` (`restore`) before
        their alerts are read. Alerts are handled one at a time, in offset order per
        partition (`handle`), and each one's offset is committed only after `handle`
        returned: after its deliveries were attempted and whatever it wrote (delivery
        state, notification dead letters) was acknowledged by the broker.

        Returns only by raising: cancellation, or an error of the consumer (a commit the
        group refuses, say) or of `handle`, ends the loop, after the Kafka clients and the
        HTTP sessions are closed. Broker errors while producing are not raised: those sends
        are repeated until acknowledged (`until_acknowledged`).

        Guarantees: every alert is handled at least once; a crash before its delivery state
        is recorded repeats its deliveries with the same `webhook-id` / `Idempotency-Key`
        (module docstring), and one after it finds the alert id among the customer's recent
        ones (the last `RECENT_IDS`) and skips it as a duplicate. The alert topic itself is
        never written: alerts stay there whatever a delivery does."""
        s = self.settings
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap, group_id=f"{s.group_id}.notifier",
            enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=int(s.session_timeout * 1000),
            heartbeat_interval_ms=int(max(0.5, min(3.0, s.session_timeout / 4)) * 1000),
            isolation_level="read_committed", **client_kwargs(s))
        self.producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap, acks="all", enable_idempotence=True,
                                         **client_kwargs(s))
        self.session = new_session(allow_private=False)
        self.lab_session = new_session(allow_private=True)
        await self.producer.start()
        await self.consumer.start()
        self.consumer.subscribe([self.topics.alerts], listener=_Rebalance(self))
        try:
            while True:
                batch = await self.consumer.getmany(timeout_ms=1000, max_records=100)
                for tp, records in batch.items():
                    for rec in records:
                        await self.handle(rec)
                        await self.consumer.commit({tp: rec.offset + 1})
        finally:
            await self.consumer.stop()
            await self.producer.stop()
            await self.session.close()
            await self.lab_session.close()

    async def handle(self, rec: Any) -> None:
        """Notify about one alert record `rec` of the alert topic, and record it.

        An unreadable record goes to the notifications dead-letter topic. An alert of a kind
        not notified (`kinds`) is skipped, and so is one whose id the customer's delivery
        state already holds (a re-delivery). Otherwise, unless the customer is in cooldown,
        the alert goes to each routed channel (`deliver`: retries with backoff; a channel
        that fails for good is dead-lettered with the reason). Then the customer's delivery
        state (recent alert ids, and the time of the last delivery) is written to
        `notifications.sent` and acknowledged by the broker, so the caller may commit the
        alert's offset once this returns. Returns None; delivery failures are not raised."""
        try:
            alert = orjson.loads(rec.value)
            alert_id, customer = alert["alert_id"], alert["customer_id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await self._dead_letter({"alert_offset": rec.offset, "partition": rec.partition},
                                    None, "unreadable alert", 0)
            return
        if alert.get("kind") not in self.cfg.kinds:
            metrics.NOTIFICATIONS.labels("-", "skipped").inc()
            return
        st = self.state.get(customer) or {"ids": [], "last": None}
        if alert_id in st["ids"]:
            metrics.NOTIFICATIONS.labels("-", "duplicate").inc()
            return
        detected = parse_rfc3339(alert.get("detected_at", "")) or int(time.time() * 1000)
        delivered_any = False
        if in_cooldown(st["last"], detected, self.cfg.cooldown_ms):
            metrics.NOTIFICATIONS.labels("-", "suppressed").inc()
        else:
            channels = route(alert, self.cfg)
            if not channels:
                metrics.NOTIFICATIONS.labels("-", "unrouted").inc()
            for name in channels:
                delivered_any |= await self.deliver(name, alert)
        st = {"ids": [*st["ids"], alert_id][-RECENT_IDS:], "last": detected if delivered_any else st["last"]}
        self.state[customer] = st
        await self._send(self.topics.notifications_sent, customer.encode(), orjson.dumps(st))

    async def deliver(self, name: str, alert: dict[str, Any]) -> bool:
        """Attempts with backoff; True when delivered, else dead-lettered with the reason."""
        channel = self.cfg.channels[name]
        doc = redact(alert, channel)
        detail = ""
        for attempt in range(1, self.cfg.max_attempts + 1):
            result = await self._attempt(channel.type, channel, doc)
            outcome, detail, retry_after = result
            if outcome == "delivered":
                metrics.NOTIFICATIONS.labels(name, "delivered").inc()
                return True
            if outcome == "fail" or attempt == self.cfg.max_attempts:
                break
            metrics.NOTIFICATIONS.labels(name, "retried").inc()
            await asyncio.sleep(backoff_s(attempt, self.cfg, self.rng, retry_after))
        metrics.NOTIFICATIONS.labels(name, "failed").inc()
        log.warning("notification %s via %s failed after %d attempt(s): %s",
                    alert["alert_id"], name, attempt, detail)
        await self._dead_letter(alert, name, detail, attempt)
        return False

    async def _attempt(self, kind: str, channel: Any, doc: dict[str, Any]) -> Attempt:
        assert self.session is not None and self.lab_session is not None
        timeout = self.cfg.timeout_s
        session = self.lab_session if channel.allow_private else self.session
        if kind == "webhook":
            return await send_webhook(session, channel, doc, timeout)
        if kind == "slack":
            return await send_slack(session, channel, doc, timeout)
        return await send_email(channel, doc, timeout)

    async def _dead_letter(self, alert: dict[str, Any], channel: str | None, reason: str, attempts: int) -> None:
        record = {"alert_id": alert.get("alert_id"), "channel": channel, "reason": reason,
                  "attempts": attempts, "failed_at": format_rfc3339(int(time.time() * 1000)),
                  "alert": alert}
        key = alert.get("customer_id", "").encode() or None
        await self._send(self.topics.notifications_deadletter, key, orjson.dumps(record))

    async def _send(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Produce and wait for the broker, retrying while it is away (nothing is dropped)."""
        producer = self.producer
        assert producer is not None
        await until_acknowledged(lambda: producer.send_and_wait(topic, value, key=key),
                                 f"a record to {topic}")
