"""The project's own broker: idempotent start, status, a real round trip, clean stop."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from cxstream.broker import BrokerError, LocalBroker


async def test_start_is_idempotent_and_stop_is_clean(local_broker_factory) -> None:
    b: LocalBroker = local_broker_factory()
    first = await asyncio.to_thread(b.start, 120)
    assert not first.already_running and first.log_path.is_file()
    again = await asyncio.to_thread(b.start)
    assert again.already_running and again.pid == first.pid
    assert b.status().running and b.status().pid == first.pid

    admin = AIOKafkaAdminClient(bootstrap_servers=first.bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic("roundtrip", 1, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=first.bootstrap, acks="all")
    await producer.start()
    await producer.send_and_wait("roundtrip", b"hello", key=b"k")
    await producer.stop()
    consumer = AIOKafkaConsumer("roundtrip", bootstrap_servers=first.bootstrap,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        record = await consumer.getone()
    finally:
        await consumer.stop()
    assert (record.key, record.value) == (b"k", b"hello")

    assert b.stop() is True
    assert not b.status().running
    assert b.stop() is False


def test_a_port_taken_by_something_else_is_a_clear_error(local_broker_factory) -> None:
    b: LocalBroker = local_broker_factory()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", b.port))
        squatter.listen()
        with pytest.raises(BrokerError, match=f"port {b.port} is already in use"):
            b.start()
