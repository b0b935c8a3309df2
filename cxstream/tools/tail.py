"""Read a topic from the start (or the end) without joining a consumer group.

Used by `cxstream deadletters` and `cxstream alerts`: reading never moves any group's
offsets, and without `--follow` it stops at the end offsets seen when it started.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord


async def read_topic(bootstrap: str, topic: str, *, from_beginning: bool = True,
                     follow: bool = False, security: Mapping[str, Any] | None = None,
                     positioned: asyncio.Event | None = None
                     ) -> AsyncIterator[ConsumerRecord]:
    """``security``: TLS/SASL client arguments, ``kafka_security.client_kwargs(settings)``.
    ``positioned``: set once every partition's starting position is resolved (from the end:
    whatever is written after that is read), before the first record; nothing is yielded
    when the topic has no partitions."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                group_id=None, isolation_level="read_committed",
                                **(security or {}))
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - first metadata fetch
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        end = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if (await consumer.position(tp)) < end[tp]}
        if positioned is not None:
            positioned.set()
        while follow or remaining:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                for record in records:
                    yield record
                if not follow and records and records[-1].offset + 1 >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
