"""The project's own broker, for real (no mocks): idempotent start, status, a produce/consume
round trip, clean stop, restart on the same data dir, and clear errors when it cannot work.

`LocalBroker` calls block (they wait for a JVM), so async tests run them in a thread.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from cxstream.tools.broker import BrokerError, LocalBroker, wait_ready

from .harness import free_port, unique_prefix

BrokerFactory = Callable[..., LocalBroker]


async def _create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def _topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()


async def test_start_is_idempotent_round_trips_and_stops(
        local_broker_factory: BrokerFactory) -> None:
    b = local_broker_factory()
    first = await asyncio.to_thread(b.start, 120)
    assert not first.already_running
    assert first.bootstrap == f"127.0.0.1:{b.port}"
    assert "Kafka Server started" in first.log_path.read_text()  # the log4j2 binding works

    again = await asyncio.to_thread(b.start)
    assert again.already_running and again.pid == first.pid
    st = b.status()
    assert (st.running, st.pid, st.port, st.log_path, st.data_dir) == (
        True, first.pid, b.port, first.log_path, b.data_dir)

    await _create_topic(first.bootstrap, "roundtrip")  # auto-create is off
    producer = AIOKafkaProducer(bootstrap_servers=first.bootstrap, acks="all",
                                enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait("roundtrip", b"hello", key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer("roundtrip", bootstrap_servers=first.bootstrap,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
    assert (record.key, record.value) == (b"k", b"hello")

    assert await asyncio.to_thread(b.stop) is True
    st = b.status()
    assert not st.running and st.pid is None and not b.pid_path.exists()
    assert not _pid_alive(first.pid)
    assert await asyncio.to_thread(b.stop) is False

    # A restart reuses the data dir: same ports, no re-format, the topic is still there.
    again = await asyncio.to_thread(b.start, 120)
    assert not again.already_running and again.pid != first.pid
    assert "roundtrip" in await _topics(again.bootstrap)
    assert await asyncio.to_thread(b.stop) is True


def test_a_port_taken_by_something_else_is_a_clear_error(
        local_broker_factory: BrokerFactory) -> None:
    b = local_broker_factory()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", b.port))
        squatter.listen()
        started = time.monotonic()
        with pytest.raises(BrokerError, match=f"port {b.port} is already in use"):
            b.start()
    assert time.monotonic() - started < 10  # fails fast: no JVM was launched to find out
    assert not b.status().running and not b.pid_path.exists()


def test_a_taken_controller_port_is_named_too(local_broker_factory: BrokerFactory) -> None:
    controller = free_port()
    b = local_broker_factory(controller_port=controller)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", controller))
        squatter.listen()
        with pytest.raises(BrokerError, match=f"controller port {controller} is already in use"):
            b.start()


def test_a_stale_pid_file_is_not_a_running_broker(local_broker_factory: BrokerFactory) -> None:
    b = local_broker_factory()
    b.data_dir.mkdir(parents=True)
    b.pid_path.write_text(f"{os.getpid()}\n")  # alive, but not this data dir's broker
    assert not b.status().running
    assert b.stop() is False  # and it must not signal that process
    assert not b.pid_path.exists()


def test_a_data_dir_keeps_its_ports(local_broker_factory: BrokerFactory) -> None:
    b = local_broker_factory()
    b.data_dir.mkdir(parents=True)
    (b.data_dir / "ports").write_text(f"{b.port + 7} {b.port + 8}\n")  # formatted for others
    with pytest.raises(BrokerError, match=f"belongs to a broker on port {b.port + 7}"):
        b.start()


def test_wait_ready_says_when_nothing_listens() -> None:
    port = free_port()
    with pytest.raises(BrokerError, match=f"nothing listens at 127.0.0.1:{port}"):
        wait_ready(f"kafka://127.0.0.1:{port}", 1.5)


def test_wait_ready_says_when_a_listener_is_not_kafka() -> None:
    with socket.socket() as mute:  # completes TCP handshakes, never answers
        mute.bind(("127.0.0.1", 0))
        mute.listen()
        port = mute.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(BrokerError, match="did not answer as a ready Kafka broker"):
            wait_ready(f"127.0.0.1:{port}", 3)
        assert time.monotonic() - started < 10  # the timeout bounds each attempt too


async def test_the_session_broker_serves_consumer_groups(kafka_bootstrap: str) -> None:
    """The fixture every integration test uses: ready means a group can join and commit."""
    topic, group = f"{unique_prefix()}groups", f"{unique_prefix()}g"
    await _create_topic(kafka_bootstrap, topic, partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, str(i).encode(), key=str(i).encode())
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        seen: set[bytes] = set()
        deadline = time.monotonic() + 30
        while len(seen) < 10 and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                seen.update(r.value for r in records)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert seen == {str(i).encode() for i in range(10)}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
