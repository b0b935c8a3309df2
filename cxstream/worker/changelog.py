"""Writes a batch's state entries: to the table's changelog first, then to the local store.

Why not `table[key] = value`: Faust sends one changelog message per table write through its
producer buffer (tens of microseconds each) and writes the local store before the changelog
has it. Here each partition's entries of a batch go out as whole record batches (aiokafka's
`create_batch`/`send_batch`), in the order given, and reach the local store only once the
broker has acknowledged them, with their changelog offsets (what RocksDB remembers as
"persisted", so a restart reads the changelog from there). The local store is therefore
never ahead of the changelog, which is what another worker recovers from.

Order is kept: one producer, batches of a partition sent one after another (aiokafka keeps
one in flight per partition). If the broker fails a batch, the partition's entries are sent
again from the first, so whatever prefix a crash leaves is a prefix of the intended writes
followed by a full copy of them; the replay argument in `cxstream.core.batch` holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from aiokafka.errors import KafkaError
from faust.types import TP

from cxstream.core.step import DEFAULT_MAX_MESSAGE_BYTES
from cxstream.kafka.retry import until_acknowledged
from cxstream.worker.limits import record_size

try:
    from rocksdict import WriteBatch
except ImportError:  # pragma: no cover - the rocksdb extra is not installed: memory store only
    WriteBatch = None

#: (key, value) in write order; value None deletes the key.
Entries = Sequence[tuple[str, Any]]


def encode(entries: Entries) -> list[tuple[bytes, bytes | None]]:
    """Changelog (and RocksDB) bytes of entries: JSON keys and values, as Faust's codec
    writes them (orjson gives the same bytes); a deletion keeps None."""
    return [(orjson.dumps(k), None if v is None else orjson.dumps(v)) for k, v in entries]


def partition_databases(table: Any) -> Callable[[int], Any] | None:
    """The RocksDB store's lookup of a partition's database, or None for a store that is one
    dict (the memory store, or a dict standing in for the table). Faust has no public
    per-partition access to its stores; reads (`cxstream.worker.processor`) and writes (here) both
    decide by this."""
    return getattr(getattr(table, "data", table), "_db_for_partition", None)


class _Message:
    """The parts of a changelog message that Faust's stores read in `apply_changelog_batch`."""

    __slots__ = ("tp", "partition", "offset", "key", "value")

    def __init__(self, tp: TP, offset: int, key: bytes, value: bytes | None) -> None:
        self.tp, self.partition, self.offset, self.key, self.value = tp, tp.partition, offset, key, value


class _Event:
    __slots__ = ("key", "value", "message")

    def __init__(self, key: str, value: Any, message: _Message) -> None:
        self.key, self.value, self.message = key, value, message


async def _last_of(futures: list[tuple[asyncio.Future[Any], int]]) -> int:
    """The offset of the last record of these record batches, once all are acknowledged."""
    last = -1
    for fut, count in futures:
        meta = await fut
        last = meta.offset + count - 1
    return last


def _same(value: Any) -> Any:
    return value


async def send_full(producer: Any, builder: Any, topic: str, partition: int,
                    key: bytes | None, value: bytes | None) -> tuple[Any, Any]:
    """`builder` (aiokafka's `create_batch`) has no room for the record `key`, `value`: send
    it to `topic`[`partition`] and start a new one holding that record. Returns the new
    builder and the future of the batch sent; ValueError for a record no batch can hold."""
    full = await producer.send_batch(builder, topic, partition=partition)
    builder = producer.create_batch()
    if builder.append(key=key, value=value, timestamp=None) is None:
        raise ValueError(f"a record of {len(value or b'')} bytes does not fit in a producer "
                         "batch")
    return builder, full


def aiokafka_producer(app: Any) -> Any:
    """Faust's own aiokafka producer (same connection, security settings and idempotence),
    for the records cxstream sends itself; Faust has no public accessor for it."""
    producer = getattr(app.producer, "_producer", None)
    if producer is None:
        raise RuntimeError("the Kafka producer is not started: nothing can be sent yet")
    return producer


class ChangelogWriter:
    """Writes entries of the state table partition by partition, changelog first."""

    def __init__(self, app: Any, table: Any) -> None:
        self.app = app
        self.table = table
        #: The changelog topic's `max.message.bytes` (`Processor.read_limits`): no record,
        #: and no record batch, sent is larger.
        self.max_message_bytes = DEFAULT_MAX_MESSAGE_BYTES

    @property
    def topic(self) -> str:
        return self.table.changelog_topic.get_topic_name()

    async def write(self, writes: Mapping[int, Entries]) -> None:
        """Write the state entries of a batch: `writes` maps a partition of the state table to
        its entries, (key, value) in write order, a value None deleting the key.

        Each partition's entries go to the same partition of the table's changelog topic, in
        the order given, as whole record batches; the partitions are all handed to the
        producer first, then waited for one by one. Once the broker has acknowledged every
        record of a partition, its entries are written to the partition's local store in
        one go, recording the changelog offset of the last one as persisted (where a
        restart resumes reading the changelog). Partitions with no entries are skipped.

        Returns None once every partition's entries are acknowledged and in the local store.
        Broker errors that waiting can fix are not raised: the partition's entries are all
        sent again, from the first, with a growing delay (`until_acknowledged`), for as long
        as it takes. Raises PermanentKafkaError when the broker refuses them for good (a
        record batch over the changelog's max.message.bytes, no ACL to write), RuntimeError
        when Faust's producer is not started, and ValueError for an entry too large for a
        producer batch.

        Guarantee: the local store is never ahead of the changelog, which is what another
        worker recovers from. A partition's changelog receives the entries in the order
        given, and a retry writes the same entries again from the first, so the state a
        crash leaves is that of a prefix of them: the replay argument of
        `cxstream.core.batch` holds."""
        topic = self.topic
        rocksdb = partition_databases(self.table) is not None
        sent = {}
        for partition, entries in writes.items():
            if entries:
                store = WriteBatch(raw_mode=True) if rocksdb else None
                sent[partition] = (await self._send(topic, partition, entries, store), store)
        for partition, (futures, store) in sent.items():
            last = await self._last_offset(topic, partition, writes[partition], futures, store)
            self._apply(TP(topic, partition), writes[partition], store, last)

    def _apply(self, tp: TP, entries: Entries, store_batch: Any, last_offset: int) -> None:
        """Write acknowledged entries to the local store: RocksDB's write batch filled while
        they were sent (`_send_batches`), recording `last_offset` as persisted (where a
        restart resumes reading the changelog); the memory store (`store_batch` None) from
        the entries themselves."""
        store = self.table.data
        database = partition_databases(self.table)
        if database is None:
            first = last_offset - len(entries) + 1
            store.apply_changelog_batch(
                [_Event(k, v, _Message(tp, first + i, kb, vb))
                 for i, ((k, v), (kb, vb)) in enumerate(zip(entries, encode(entries)))],
                to_key=_same, to_value=_same)
            return
        # Faust's RocksDB store does the same in `apply_changelog_batch`, from one event
        # object per entry.
        database(tp.partition).write(store_batch)
        store.set_persisted_offset(tp, last_offset)

    async def _send(self, topic: str, partition: int, entries: Entries,
                    store_batch: Any) -> list[tuple[asyncio.Future[Any], int]]:
        """Hand the entries to the producer as record batches, filling `store_batch` (a
        RocksDB write batch, or None) on the way; (future, count) per record batch. A failure
        to hand them over comes back as a failed future, retried by `_last_offset`, which
        fills the write batch anew (it may hold only part of the entries)."""
        try:
            return await self._send_batches(topic, partition, entries, store_batch)
        except KafkaError as exc:
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            return [(failed, 0)]

    async def _send_batches(self, topic: str, partition: int, entries: Entries,
                            store_batch: Any = None) -> list[tuple[asyncio.Future[Any], int]]:
        """No record, nor record batch, sent is larger than `max_message_bytes` (a record that
        would be raises ValueError before any of its bytes are sent). Encodes here, entry by
        entry, rather than all entries first: each entry's bytes go to the producer's buffer
        and to the write batch (both copy them) and are freed at once. Keeping a batch's
        bytes alive until the broker's answer cost more than the encoding itself (figures:
        docs/performance.md)."""
        producer = self._producer()
        dumps = orjson.dumps
        limit = self.max_message_bytes
        futures = []
        builder = producer.create_batch()
        count = 0
        for k, v in entries:
            key = dumps(k)
            value = None if v is None else dumps(v)
            size = record_size(key, value)
            if size > limit:
                # Never sent: the broker would refuse it for good. The planner bounds every
                # entry below the limit (`cxstream.core.step`), so this is a bug.
                raise ValueError(f"a state entry of kind {k[:1]!r} takes {size} bytes, over the "
                                 f"state changelog's max.message.bytes ({limit}); this is a "
                                 "bug of cxstream's entry bounds: please report it")
            # A record batch is refused whole when over the limit: start a new one first.
            if (count and builder.size() + size > limit
                    or builder.append(key=key, value=value, timestamp=None) is None):
                builder, full = await send_full(producer, builder, topic, partition, key, value)
                futures.append((full, count))
                count = 0
            if store_batch is not None:
                if value is None:
                    store_batch.delete(key)
                else:
                    store_batch.put(key, value)
            count += 1
        futures.append((await producer.send_batch(builder, topic, partition=partition), count))
        return futures

    async def _last_offset(self, topic: str, partition: int, entries: Entries,
                           futures: list[tuple[asyncio.Future[Any], int]],
                           store_batch: Any) -> int:
        """The changelog offset of the last record, once all are acknowledged; sends them
        all again while the broker fails them, filling `store_batch` (if any) anew each time,
        so that it holds the entries once whichever attempt succeeds."""
        async def again() -> int:
            if store_batch is not None:
                store_batch.clear()
            return await _last_of(await self._send_batches(topic, partition, entries,
                                                           store_batch))

        return await until_acknowledged(again, f"state changelog {topic}[{partition}]",
                                        kind="state", topic=topic, first=_last_of(futures))

    def _producer(self) -> Any:
        return aiokafka_producer(self.app)
