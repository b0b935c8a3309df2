"""Partitioning: which partition a customer's records go to, and the check that the topics a
worker reads are co-partitioned.

Why it matters: all state of a customer lives with the partition of its key, and a worker
owns partition *p* of every input topic together. That holds only if (1) the input topics
and the state changelog have the same partition count, and (2) every producer maps a key to
a partition the same way. (2) is murmur2 of the key bytes, Java's default partitioner and
aiokafka's `DefaultPartitioner`; librdkafka clients (confluent-kafka, kcat, …) default to
`consistent_random` (CRC32) and must set `partitioner=murmur2_random`, or a customer's
responses and profile land on different partitions and never meet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiokafka.partitioner import DefaultPartitioner, murmur2

#: The partitioner every cxstream producer passes explicitly: murmur2 of the key, as Java's
#: clients and librdkafka's `murmur2_random` (a record without a key goes to a random one).
PARTITIONER = DefaultPartitioner()


def partition_for(key: bytes, partitions: int) -> int:
    """The partition of a keyed record among `partitions`: murmur2 of the key bytes with the
    sign bit cleared, modulo the count (Java's `Utils.toPositive(Utils.murmur2(key)) % n`)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def copartitioning_problem(counts: Mapping[str, int | None], inputs: Sequence[str], *,
                           changelog: str | None = None,
                           configured: int | None = None) -> str | None:
    """What is wrong with the partition counts of a worker's topics, or None when they are
    co-partitioned.

    `counts` maps topic names to their partition counts (None: the topic does not exist);
    `inputs` are the input topics, which must all exist with one count; `changelog`, when
    given and existing, must have that count too; `configured` (CXSTREAM_PARTITIONS, the
    worker's state table) too, when given. The answer names the topics, their counts and
    the fix, and carries no record content."""
    found = {name: counts.get(name) for name in inputs}
    missing = [name for name, n in found.items() if n is None]
    if missing:
        return (f"input topic(s) {', '.join(missing)} do not exist: start the worker with "
                "`cxstream worker` (it creates them) or create them with the partition count "
                "of the others")
    listed = ", ".join(f"{name} has {n}" for name, n in found.items())
    distinct = sorted({n for n in found.values() if n is not None})
    if len(distinct) > 1:
        return (f"the input topics must have the same number of partitions (co-partitioned: a "
                f"customer's records are keyed by customer_id and must meet in one worker), but "
                f"{listed}. Recreate them with one count (CXSTREAM_PARTITIONS) and produce the "
                f"data again, or give each the largest count (kafka-topics.sh --alter --topic "
                f"NAME --partitions {distinct[-1]}) and start with a new CXSTREAM_APP_ID (records "
                "already written stay on their old partitions)")
    (n,) = distinct
    if configured is not None and configured != n:
        return (f"the input topics have {n} partitions ({listed}) but CXSTREAM_PARTITIONS is "
                f"{configured}: set CXSTREAM_PARTITIONS={n} (the state table needs one partition "
                "per input partition)")
    if changelog is not None and counts.get(changelog) not in (None, n):
        return (f"the state changelog {changelog} has {counts[changelog]} partitions but the "
                f"input topics have {n}; they must match (one changelog partition per input "
                "partition). Use a new CXSTREAM_APP_ID (a new group and changelog, rebuilt from "
                "the inputs still retained)")
    return None
