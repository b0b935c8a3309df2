"""Co-partitioning against the real broker: the same keys written by `cxstream produce`
(aiokafka) and by a librdkafka client set to `partitioner=murmur2_random` (confluent-kafka)
land on the same partitions, where Java's murmur2 puts them; librdkafka's default
(`consistent_random`, CRC32) puts many elsewhere — why the docs require the setting. And a
worker refuses to start on input topics, or a CXSTREAM_PARTITIONS, that would split a
customer's state across workers."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import orjson
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from confluent_kafka import Producer

from cxstream.config.settings import Settings
from cxstream.kafka.partitions import partition_for
from cxstream.kafka.topics import Topics
from cxstream.tools.produce import produce

from .harness import Worker, read_all, unique_prefix, wait_for

PARTITIONS = 6
KEYS = [f"cust-{i:04d}".encode() for i in range(120)]


async def create_topics(bootstrap: str, counts: dict[str, int]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, n, 1) for name, n in counts.items()])
    finally:
        await admin.close()


async def partitions_on_broker(bootstrap: str, topic: str) -> dict[bytes, int]:
    """Key → partition of every record of `topic`, as read back from the broker."""
    records = await read_all(bootstrap, topic)
    assert len(records) == len(KEYS), topic
    return {r.key: r.partition for r in records}


def librdkafka_produce(bootstrap: str, topic: str, **config: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", **config})
    failures: list[str] = []

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    for key in KEYS:
        producer.produce(topic, value=orjson.dumps({"customer_id": key.decode()}), key=key,
                         on_delivery=delivered)
    assert producer.flush(60) == 0 and not failures, failures


async def test_librdkafka_with_murmur2_random_agrees_with_cxstream_produce_and_its_default_does_not(
        kafka_bootstrap: str) -> None:
    prefix = unique_prefix()
    settings = Settings.from_env({"CXSTREAM_BROKER": kafka_bootstrap,
                                  "CXSTREAM_TOPIC_PREFIX": prefix,
                                  "CXSTREAM_PARTITIONS": str(PARTITIONS)})
    murmur, crc = f"{prefix}by-librdkafka-murmur2", f"{prefix}by-librdkafka-default"
    await create_topics(kafka_bootstrap, {murmur: PARTITIONS, crc: PARTITIONS})

    lines = b"".join(orjson.dumps({"customer_id": k.decode(), "segment": "x"}) + b"\n"
                     for k in KEYS)
    report = await produce(settings, "customers", io.BytesIO(lines), show_progress=False)
    assert report.sent == len(KEYS) and report.unkeyed == 0
    await asyncio.to_thread(librdkafka_produce, kafka_bootstrap, murmur,
                            partitioner="murmur2_random")
    await asyncio.to_thread(librdkafka_produce, kafka_bootstrap, crc)  # consistent_random

    ours = await partitions_on_broker(kafka_bootstrap, Topics(prefix).customers)
    theirs = await partitions_on_broker(kafka_bootstrap, murmur)
    default = await partitions_on_broker(kafka_bootstrap, crc)
    java = {k: partition_for(k, PARTITIONS) for k in KEYS}
    assert ours == java
    assert theirs == java
    moved = [k for k in KEYS if default[k] != java[k]]
    assert len(moved) > len(KEYS) // 2, "librdkafka's default should disagree on most keys"
    assert len(set(java.values())) == PARTITIONS  # the keys cover every partition


async def wait_exit(w: Worker) -> int:
    async def exited() -> int | None:
        assert w.proc is not None
        return w.proc.poll()

    code: int = await wait_for(exited, 120, "the worker to refuse to start")
    return code


async def partition_counts(bootstrap: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(await admin.list_topics())
    finally:
        await admin.close()
    return {d["topic"]: len(d["partitions"]) for d in described}


async def refused_start(worker_factory: Any, surveys: int, interactions: int,
                        customers: int) -> tuple[Worker, str]:
    """A worker started on input topics of these sizes, which must exit with code 2 (a
    setting or topic to fix); the worker and its log."""
    w: Worker = worker_factory()
    t = Topics(w.prefix)
    await create_topics(w.bootstrap, {t.surveys: surveys, t.interactions: interactions,
                                      t.customers: customers})
    w.start()
    assert await wait_exit(w) == 2
    return w, w.log_tail()


async def test_a_worker_refuses_input_topics_of_different_sizes(worker_factory: Any) -> None:
    w, log = await refused_start(worker_factory, 4, 4, 6)
    t = Topics(w.prefix)
    assert "error: the input topics must have the same number of partitions" in log, log
    assert (f"{t.surveys} has 4, {t.interactions} has 4, {t.customers} has 6" in log
            and "--partitions 6" in log), log
    changelog = f"{w.prefix}cxstream-state-changelog"
    assert changelog not in await partition_counts(w.bootstrap)  # nothing created


async def test_a_worker_refuses_a_partition_setting_other_than_the_inputs(
        worker_factory: Any) -> None:
    """Inputs declared elsewhere (Strimzi, an admin) with 6 partitions and the default
    CXSTREAM_PARTITIONS=4: the state table would not match them; the worker says which
    setting to change, before creating a changelog of the wrong size."""
    w, log = await refused_start(worker_factory, 6, 6, 6)
    assert "CXSTREAM_PARTITIONS is 4: set CXSTREAM_PARTITIONS=6" in log, log
    counts = await partition_counts(w.bootstrap)
    assert f"{w.prefix}cxstream-state-changelog" not in counts
    w.extra_env["CXSTREAM_PARTITIONS"] = "6"  # the fix named
    w.start()
    await w.wait_ready()
    assert (await partition_counts(w.bootstrap))[f"{w.prefix}cxstream-state-changelog"] == 6
