"""The notifier: alerts topic → success managers, in its own consumer group, isolated from
the stream.

Why not a Faust agent on the same consumer: a receiver that hangs would fill that agent's
buffer and stall the consumer that scoring and alerting share. Here a slow receiver only
delays notifications: the notifier has its own consumer, which keeps polling while
deliveries wait (`cxstream.notify.intake`); every attempt has a time limit; and whatever
fails — a sender, one alert, the loop itself — is counted, dead-lettered or restarted
(`cxstream.notify.supervisor`), never raised into the worker.

Delivery state (recent alert ids and the last notification time) is kept per subject
(`cxstream.core.notification.delivery_subject`): the customer of a customer alert, the
segment, program and window of a target alert (`target|<segment_key>|<program>|<window>`).
It lives in the compacted topic `<prefix>notifications.sent`, keyed by the subject and
written to the partition of the alert it records, and is reloaded for the partitions this
worker is assigned.

Order per alert: deliver (with retries) → record in `notifications.sent` (acknowledged) →
commit the alert's offset. A crash between delivery and record repeats that delivery with
the same `webhook-id` / `Idempotency-Key`, so a deduplicating receiver accepts it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from cxstream import metrics
from cxstream.config.settings import Settings
from cxstream.core.notification import (
    FailureReason,
    NotifyConfig,
    alert_problem,
    backoff_s,
    delivery_subject,
    in_cooldown,
    is_target_alert,
    redact,
    route,
)
from cxstream.core.timefmt import format_rfc3339, parse_rfc3339
from cxstream.kafka.retry import PermanentKafkaError, RecordKind, until_acknowledged
from cxstream.kafka.security import client_kwargs
from cxstream.kafka.topics import Topics
from cxstream.notify.intake import Intake
from cxstream.notify.senders import Attempt, new_session, send_email, send_slack, send_webhook
from cxstream.notify.supervisor import supervise

log = logging.getLogger(__name__)
RECENT_IDS = 50
#: Threads for blocking SMTP exchanges: a few hung servers cannot take the threads the rest
#: of the worker uses (the loop's default executor).
SMTP_THREADS = 4


class Notifier:
    def __init__(self, settings: Settings, cfg: NotifyConfig, *, seed: int | None = None) -> None:
        self.settings = settings
        self.cfg = cfg
        self.topics = Topics(settings.topic_prefix)
        # delivery subject (customer_id, or target|<segment_key>|<program>|<window>) ->
        # {"ids": [recent alert ids], "last": ms of the last delivery}
        self.state: dict[str, dict[str, Any]] = {}
        self.owned: set[int] = set()
        self.rng = random.Random(seed)
        self.producer: AIOKafkaProducer | None = None
        self.session: aiohttp.ClientSession | None = None  # public addresses only
        self.lab_session: aiohttp.ClientSession | None = None  # channels with allow_private
        self.executor: ThreadPoolExecutor | None = None  # SMTP; None: the loop's default

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
        reader = AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap,
                                  enable_auto_commit=False, **client_kwargs(self.settings))
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
        """Notify about the alert topic until cancelled; never raises anything else.

        Runs `run_once` under a supervisor (`cxstream.notify.supervisor.supervise`): when
        it fails — a Kafka error, a refused commit, anything — the failure is logged (its
        type only), counted in `cxstream_notifier_errors_total{reason}`, and the loop starts
        again after a backoff (1 s doubling to 60 s), with new Kafka clients. So a
        notification problem never stops the worker, and a failure tied to one alert cannot
        crash it again and again: `handle` turns those into dead letters. Alerts not yet
        committed when the loop stopped are handled again (at least once; same
        `webhook-id`)."""
        await supervise(self.run_once, "the notifier")

    async def run_once(self) -> None:
        """One run of the notifier's loop; returns only by raising.

        Joins the consumer group `<group_id>.notifier` (its own, so a slow receiver never
        holds back the worker's processing), reading committed records only and starting
        from the earliest offset when the group has none. `cxstream.notify.intake.Intake`
        polls and hands each alert to `handle`, per partition in offset order and at most
        the routing file's `queue_size` ahead; the delivery state of newly assigned
        partitions is reloaded from `notifications.sent` (`restore`) before their alerts are
        handled, and an alert's offset is committed only after `handle` returned for it (its
        deliveries attempted and whatever it wrote acknowledged by the broker).

        Raises the first error of the consumer or of a lane; the Kafka clients, HTTP sessions
        and SMTP threads are closed first. Broker errors while producing are not raised
        while sending again can succeed (`until_acknowledged`)."""
        s = self.settings
        self.state.clear()
        self.owned.clear()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap, group_id=f"{s.group_id}.notifier",
            enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=int(s.session_timeout * 1000),
            heartbeat_interval_ms=int(max(0.5, min(3.0, s.session_timeout / 4)) * 1000),
            isolation_level="read_committed", **client_kwargs(s))
        producer = self.producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap, acks="all", enable_idempotence=True,
            **client_kwargs(s))
        self.session = new_session(allow_private=False)
        self.lab_session = new_session(allow_private=True)
        self.executor = ThreadPoolExecutor(SMTP_THREADS, thread_name_prefix="cxstream-smtp")
        try:
            await producer.start()
            await consumer.start()
            await Intake(consumer, self.topics.alerts, self.handle, self.restore, self.forget,
                         self.cfg.queue_size).run()
        finally:
            for closing in (consumer.stop(), producer.stop(), self.session.close(),
                            self.lab_session.close()):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(closing, 30)
            # Threads still talking to a hung SMTP server end at their socket timeout.
            self.executor.shutdown(wait=False, cancel_futures=True)

    # -- one alert --------------------------------------------------------------------------
    async def handle(self, rec: Any) -> None:
        """Notify about one alert record `rec` of the alert topic, and record it.

        A record that is not an alert cxstream can notify (not JSON, not an object, an alert
        id that is not 1-128 visible ASCII characters, no customer id for a customer alert,
        no segment key, program or window for a target alert, mistyped owner, segment or
        journey: `alert_problem`) or that cannot be routed goes to the notifications
        dead-letter topic (`bad_alert`, with the record's partition and offset). An alert of
        a kind not notified (`kinds`) is skipped, and so is one whose id its subject's
        delivery state already holds (a re-delivery). The subject (`delivery_subject`) is
        the customer of a customer alert, `target|<segment_key>|<program>|<window>` of a
        target alert. Otherwise, unless the subject is in cooldown, the alert goes to each
        routed channel (`deliver`: retries with backoff; a channel that fails for good is
        dead-lettered with the reason). Then the subject's delivery state (recent alert ids,
        and the time of the last delivery) is written to `notifications.sent`, keyed by the
        subject, and acknowledged by the broker, so the caller may commit the alert's offset
        once this returns.

        Returns None; no delivery failure and nothing in the alert makes it raise. Raises
        only when Kafka refuses a write for good (PermanentKafkaError) or the producer is
        gone: the loop then restarts and the alert is handled again."""
        source = {"topic": self.topics.alerts, "partition": rec.partition, "offset": rec.offset}
        problem: str | None
        try:
            alert: Any = orjson.loads(rec.value)
        except (orjson.JSONDecodeError, TypeError):
            alert, problem = None, "the record is not JSON"
        else:
            problem = alert_problem(alert)
        if problem is not None:
            await self._bad_alert(alert if isinstance(alert, dict) else None, source, problem)
            return
        if alert.get("kind") not in self.cfg.kinds:
            metrics.NOTIFICATIONS.labels("-", "skipped").inc()
            return
        alert_id, subject = alert["alert_id"], delivery_subject(alert)
        assert subject is not None  # alert_problem found none missing
        st = self.state.get(subject) or {"ids": [], "last": None}
        if alert_id in st["ids"]:
            metrics.NOTIFICATIONS.labels("-", "duplicate").inc()
            return
        try:
            detected_at = alert.get("detected_at")
            detected = (parse_rfc3339(detected_at) if isinstance(detected_at, str) else None) \
                or int(time.time() * 1000)
            cooling = in_cooldown(st["last"], detected, self.cfg.cooldown_ms)
            channels = [] if cooling else route(alert, self.cfg)
        except Exception as exc:  # noqa: BLE001 - a field the routing cannot read
            await self._bad_alert(alert, source, f"the alert cannot be routed "
                                                 f"({type(exc).__name__})")
            return
        delivered_any = False
        if cooling:
            metrics.NOTIFICATIONS.labels("-", "suppressed").inc()
        elif not channels:
            metrics.NOTIFICATIONS.labels("-", "unrouted").inc()
        for name in channels:
            delivered_any |= await self.deliver(name, alert, source)
        st = {"ids": [*st["ids"], alert_id][-RECENT_IDS:],
              "last": detected if delivered_any else st["last"]}
        self.state[subject] = st
        # A target alert's subject is not its record's key (segment_key), so its state would
        # not land on the alert's partition by key: it is sent there, where `restore` reads
        # it back. A customer alert's key, the customer_id, lands there by itself.
        partition = rec.partition if is_target_alert(alert) else None
        await self._send(self.topics.notifications_sent, subject.encode(), orjson.dumps(st),
                         partition=partition)

    async def deliver(self, name: str, alert: dict[str, Any],
                      source: dict[str, Any] | None = None) -> bool:
        """Deliver `alert` over channel `name`: attempts with backoff (`backoff_s`, honouring
        Retry-After) while they end in `retry`, up to `max_attempts`. True when delivered;
        otherwise False after the failure is counted (`cxstream_notifications_total{outcome=
        failed}` and `cxstream_notifications_failed_total{channel, reason}`), logged (no
        customer data) and dead-lettered with the reason."""
        channel = self.cfg.channels[name]
        result = Attempt("fail", "no attempt: max_attempts is below 1", None, "error")
        attempt = 0
        try:
            doc = redact(alert, channel)
        except Exception as exc:  # noqa: BLE001 - a field the privacy switches cannot read
            doc = alert
            result = Attempt("fail", f"the alert cannot be redacted ({type(exc).__name__})",
                             None, "bad_alert")
        else:
            for attempt in range(1, self.cfg.max_attempts + 1):
                result = await self._attempt(channel, doc)
                if result.verdict == "delivered":
                    metrics.NOTIFICATIONS.labels(name, "delivered").inc()
                    return True
                if result.verdict == "fail" or attempt == self.cfg.max_attempts:
                    break
                metrics.NOTIFICATIONS.labels(name, "retried").inc()
                await asyncio.sleep(backoff_s(attempt, self.cfg, self.rng, result.retry_after))
        reason: FailureReason = result.reason or "error"
        metrics.NOTIFICATIONS.labels(name, "failed").inc()
        metrics.NOTIFICATIONS_FAILED.labels(name, reason).inc()
        log.warning("notification %s via %s failed after %d attempt(s): %s (%s)",
                    alert["alert_id"], name, attempt, result.detail, reason)
        await self._dead_letter(alert, name, reason, result.detail, attempt, source)
        return False

    async def _attempt(self, channel: Any, doc: dict[str, Any]) -> Attempt:
        """One attempt within the routing file's `timeout`, whatever the channel does: the
        time limit covers the URL check, DNS, the connection and the SMTP thread alike, and
        any exception of a sender becomes a retriable `error` (its type only)."""
        limit = self.cfg.timeout_s
        try:
            return await asyncio.wait_for(self._send_once(channel, doc, limit), limit)
        except asyncio.TimeoutError:
            return Attempt("retry", f"no answer within {limit:g}s (the attempt's time limit)",
                           None, "timeout")
        except Exception as exc:  # noqa: BLE001 - a sender bug must not stop the notifier
            return Attempt("retry", f"unexpected {type(exc).__name__}", None, "error")

    async def _send_once(self, channel: Any, doc: dict[str, Any], limit: float) -> Attempt:
        assert self.session is not None and self.lab_session is not None
        session = self.lab_session if channel.allow_private else self.session
        if channel.type == "webhook":
            return await send_webhook(session, channel, doc, limit)
        if channel.type == "slack":
            return await send_slack(session, channel, doc, limit)
        return await send_email(channel, doc, limit, self.executor)

    # -- dead letters and Kafka writes ------------------------------------------------------
    async def _bad_alert(self, alert: dict[str, Any] | None, source: dict[str, Any],
                         problem: str) -> None:
        metrics.NOTIFICATIONS.labels("-", "failed").inc()
        metrics.NOTIFICATIONS_FAILED.labels("-", "bad_alert").inc()
        log.error("notifier: the record at %s[%d] offset %d cannot be notified: %s; it is on "
                  "%s", source["topic"], source["partition"], source["offset"], problem,
                  self.topics.notifications_deadletter)
        await self._dead_letter(alert or {}, None, "bad_alert", problem, 0, source)

    async def _dead_letter(self, alert: dict[str, Any], channel: str | None,
                           code: FailureReason, reason: str, attempts: int,
                           source: dict[str, Any] | None) -> None:
        """Write a notification dead letter: the alert, the channel, the failure's `code`
        (`FAILURE_REASONS`), the human reason, the attempts made and the alert record's
        source (topic, partition, offset). One Kafka refuses as too large goes again without
        the alert body (the source still points at it on the alert topic)."""
        record = {"alert_id": alert.get("alert_id"), "channel": channel, "code": code,
                  "reason": reason, "attempts": attempts,
                  "failed_at": format_rfc3339(int(time.time() * 1000)), "source": source,
                  "alert": alert or None}
        subject = delivery_subject(alert)
        key = subject.encode() if subject is not None else None
        topic = self.topics.notifications_deadletter
        try:
            await self._send(topic, key, orjson.dumps(record))
        except PermanentKafkaError as exc:
            if not exc.too_large:
                raise
            record["alert"] = None
            record["alert_omitted"] = "too large for the dead-letter topic; see source"
            await self._send(topic, key, orjson.dumps(record))

    async def _send(self, topic: str, key: bytes | None, value: bytes, *,
                    partition: int | None = None) -> None:
        """Produce (to `partition`, or the key's when None) and wait for the broker,
        retrying while it is away (nothing is dropped)."""
        producer = self.producer
        assert producer is not None
        kind: RecordKind = "notification_state" if topic == self.topics.notifications_sent \
            else "notification_deadletter"
        await until_acknowledged(
            lambda: producer.send_and_wait(topic, value, key=key, partition=partition),
            f"a record to {topic}", kind=kind, topic=topic)
