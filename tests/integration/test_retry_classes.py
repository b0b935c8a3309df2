"""Kafka errors by class, against the real broker: a send that fails for a reason that goes
away (a topic not there yet, the broker restarting) is sent again until acknowledged; one
the broker refuses for good (a record over the topic's `max.message.bytes`, or over the
producer's `max_request_size`, or a principal without the WRITE ACL) fails at once with
`PermanentKafkaError` and is counted, and a worker whose alerts are refused stops with the
fix instead of looping for ever."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from cxstream import metrics
from cxstream.core.timefmt import format_rfc3339
from cxstream.kafka.retry import PermanentKafkaError, until_acknowledged

from .harness import Worker, free_port, produce, read_all, unique_prefix, wait_for
from .test_kafka_security import DESCRIBE, LITERAL, TOPIC, grant

#: The producer's request timeout in these tests: how soon a send to an unknown topic or an
#: absent broker comes back failed (the worker's is Faust's, minutes).
REQUEST_TIMEOUT_MS = 2000


def counted(metric: Any, kind: str, error: str) -> float:
    value = metrics.REGISTRY.get_sample_value(f"{metric._name}_total",  # noqa: SLF001
                                              {"record": kind, "error": error})
    return value or 0.0


async def create_topic(bootstrap: str, name: str, **configs: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1, topic_configs=configs)])
    finally:
        await admin.close()


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all",
                         request_timeout_ms=REQUEST_TIMEOUT_MS)
    await p.start()
    yield p
    await p.stop()


async def test_a_send_to_a_topic_created_moments_later_is_retried_then_acknowledged(
        kafka_bootstrap: str, producer: AIOKafkaProducer) -> None:
    topic = f"{unique_prefix()}later"
    error = "UnknownTopicOrPartitionError"
    retried = counted(metrics.KAFKA_RETRIES, "deadletter", error)
    failed = counted(metrics.KAFKA_SEND_FAILURES, "deadletter", error)
    sending = asyncio.ensure_future(until_acknowledged(
        lambda: producer.send_and_wait(topic, b"kept", key=b"k"), "a record",
        kind="deadletter", topic=topic))

    async def refused_once() -> bool:
        assert not sending.done(), sending  # neither acknowledged nor given up meanwhile
        return counted(metrics.KAFKA_RETRIES, "deadletter", error) > retried

    await wait_for(refused_once, 60, "the send to be refused as unknown, and retried")
    await create_topic(kafka_bootstrap, topic)
    meta = await asyncio.wait_for(sending, 60)
    assert [r.value for r in await read_all(kafka_bootstrap, topic)] == [b"kept"]
    assert meta.topic == topic and meta.offset == 0
    assert counted(metrics.KAFKA_SEND_FAILURES, "deadletter", error) == failed


async def test_a_send_while_the_broker_restarts_is_retried_then_acknowledged(
        local_broker_factory: Any) -> None:
    broker = local_broker_factory()
    await asyncio.to_thread(broker.start, 120)
    topic = f"{unique_prefix()}restart"
    await create_topic(broker.bootstrap, topic)
    p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all",
                         request_timeout_ms=REQUEST_TIMEOUT_MS)
    await p.start()
    try:
        await p.send_and_wait(topic, b"before", key=b"k")
        assert await asyncio.to_thread(broker.stop) is True

        def retries() -> float:
            return sum(v for (name, labels), v in _samples("cxstream_kafka_retries_total")
                       if dict(labels)["record"] == "state")

        before = retries()
        sending = asyncio.ensure_future(until_acknowledged(
            lambda: p.send_and_wait(topic, b"during", key=b"k"), "a record", kind="state",
            topic=topic))

        async def refused() -> bool:
            assert not sending.done(), sending
            return retries() > before

        await wait_for(refused, 60, "the send to fail while the broker is away, and retry")
        await asyncio.to_thread(broker.start, 120)
        await asyncio.wait_for(sending, 120)
    finally:
        await p.stop()
    assert [r.value for r in await read_all(broker.bootstrap, topic)] == [b"before", b"during"]


def _samples(name: str) -> list[tuple[tuple[str, tuple[tuple[str, str], ...]], float]]:
    return [((s.name, tuple(sorted(s.labels.items()))), s.value)
            for family in metrics.REGISTRY.collect() for s in family.samples if s.name == name]


async def test_a_record_over_the_topics_max_message_bytes_fails_fast(
        kafka_bootstrap: str, producer: AIOKafkaProducer) -> None:
    topic = f"{unique_prefix()}small"
    await create_topic(kafka_bootstrap, topic, **{"max.message.bytes": "1024"})
    error = "MessageSizeTooLargeError"
    failed = counted(metrics.KAFKA_SEND_FAILURES, "alert", error)
    retried = counted(metrics.KAFKA_RETRIES, "alert", error)
    attempts = 0

    async def attempt() -> Any:
        nonlocal attempts
        attempts += 1
        return await producer.send_and_wait(topic, b"x" * 2048, key=b"k")

    started = time.monotonic()
    with pytest.raises(PermanentKafkaError) as info:
        await until_acknowledged(attempt, "alert a-1", kind="alert", topic=topic)
    assert time.monotonic() - started < 15 and attempts == 1  # the broker's first answer
    assert info.value.error == error and info.value.too_large
    assert f"raise max.message.bytes of {topic}" in str(info.value)
    assert counted(metrics.KAFKA_SEND_FAILURES, "alert", error) == failed + 1
    assert counted(metrics.KAFKA_RETRIES, "alert", error) == retried
    # Nothing else is stuck: a record that fits still goes through, and is all there is.
    await until_acknowledged(lambda: producer.send_and_wait(topic, b"small", key=b"k"),
                             "alert a-2", kind="alert", topic=topic)
    assert [r.value for r in await read_all(kafka_bootstrap, topic)] == [b"small"]


async def test_a_record_over_the_producers_max_request_size_fails_before_any_round_trip(
        kafka_bootstrap: str) -> None:
    topic = f"{unique_prefix()}request"
    await create_topic(kafka_bootstrap, topic)
    p = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=1024)
    await p.start()
    try:
        failed = counted(metrics.KAFKA_SEND_FAILURES, "notification_deadletter",
                         "MessageSizeTooLargeError")
        with pytest.raises(PermanentKafkaError, match="max.message.bytes"):
            await until_acknowledged(lambda: p.send_and_wait(topic, b"x" * 2048),
                                     "a record", kind="notification_deadletter", topic=topic)
        assert counted(metrics.KAFKA_SEND_FAILURES, "notification_deadletter",
                       "MessageSizeTooLargeError") == failed + 1
    finally:
        await p.stop()
    assert await read_all(kafka_bootstrap, topic) == []


async def test_a_worker_whose_alerts_are_refused_stops_with_the_fix_and_resumes_after_it(
        worker_factory: Any) -> None:
    """No endless loop on the partition: the worker exits at the first refusal, naming the
    topic and the setting; the response is not acknowledged, so once the limit is raised a
    restarted worker alerts on it. The alert topic's limit is lowered while the worker runs:
    the worker sizes alerts by the limit it read at assignment, which is then too high."""
    w: Worker = worker_factory()
    alerts = f"{w.prefix}alerts"
    w.start()
    await w.wait_ready()
    await set_max_message_bytes(w.bootstrap, alerts, 300)
    doc = {"event_id": "e-1", "customer_id": "c-1", "survey": "nps", "score": 2,
           "occurred_at": format_rfc3339(int(time.time() * 1000))}
    await produce(w.bootstrap, f"{w.prefix}surveys", [(b"c-1", orjson.dumps(doc))])

    async def exited() -> int | None:
        assert w.proc is not None
        return w.proc.poll()

    code = await wait_for(exited, 120, "the worker to stop")
    assert code != 0
    refused = [line for line in w.log_tail(400).splitlines() if "[ERROR]" in line and
               f"Kafka refused an alert for topic {alerts} with MessageSizeTooLargeError" in line]
    assert refused and f"raise max.message.bytes of {alerts}" in refused[0], w.log_tail()
    assert await read_all(w.bootstrap, alerts) == []

    await set_max_message_bytes(w.bootstrap, alerts, 1048588)
    w.start()
    await w.wait_ready()

    async def alerted() -> list[Any]:
        return await read_all(w.bootstrap, alerts)

    [alert] = await wait_for(alerted, 120, "the alert once the limit is raised")
    body = orjson.loads(alert.value)
    assert (body["kind"], body["customer_id"]) == ("detractor", "c-1")


async def set_max_message_bytes(bootstrap: str, topic: str, limit: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                  configs={"max.message.bytes": str(limit)})])
    finally:
        await admin.close()


async def test_a_principal_without_the_write_acl_fails_fast_naming_the_acl(
        local_broker_factory: Any) -> None:
    """A broker that authorizes (SASL PLAIN on loopback, so no certificates are needed):
    a principal allowed only to DESCRIBE the topic is refused by the broker's answer; one
    allowed nothing is refused already by the metadata. Neither is sent again."""
    port = free_port()
    plain = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
             'user_reader="reader-Secret-1";')
    broker = local_broker_factory(listeners={"SASL_PLAINTEXT": port}, properties={
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": plain,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS",  # the PLAINTEXT listener: ours, to set things up
    })
    await asyncio.to_thread(broker.start, 120)
    prefix = unique_prefix()
    described, hidden = f"{prefix}described", f"{prefix}hidden"
    for name in (described, hidden):
        await create_topic(broker.bootstrap, name)
    await grant(broker.bootstrap, "User:reader", [(TOPIC, described, LITERAL, DESCRIBE)])
    p = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{port}", security_protocol="SASL_PLAINTEXT",
                         sasl_mechanism="PLAIN", sasl_plain_username="reader",
                         sasl_plain_password="reader-Secret-1",
                         request_timeout_ms=REQUEST_TIMEOUT_MS)
    await p.start()
    error = "TopicAuthorizationFailedError"
    try:
        for topic in (described, hidden):
            failed = counted(metrics.KAFKA_SEND_FAILURES, "state", error)
            attempts = 0

            async def attempt(topic: str = topic) -> Any:
                nonlocal attempts
                attempts += 1
                return await p.send_and_wait(topic, b"v", key=b"k")

            with pytest.raises(PermanentKafkaError) as info:
                await until_acknowledged(attempt, "state", kind="state", topic=topic)
            assert attempts == 1 and info.value.error == error, topic
            assert f"may not write to {topic}: grant it WRITE" in str(info.value)
            assert counted(metrics.KAFKA_SEND_FAILURES, "state", error) == failed + 1
    finally:
        await p.stop()
