"""`ChangelogWriter` against a real RocksDB database and real aiokafka record batches, with a
producer that keeps what it acknowledges as a partition's log (the broker's part is tested in
the integration tests): what the local store ends up holding, and what the changelog holds,
also when handing a record batch over fails half-way through a partition's entries."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from faust.types import TP
from rocksdict import Options, Rdict

from cxstream.kafka import retry
from cxstream.worker.changelog import ChangelogWriter, encode

TOPIC = "state-changelog"


class Producer:
    """`create_batch`/`send_batch` as aiokafka's producer has them; small record batches
    (a few entries each), the `fail_at`-th hand-over raising as with the broker away."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.calls = 0
        self.fail_at = fail_at
        self.log: dict[int, list[tuple[bytes, bytes | None]]] = {}

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(200, 0)

    async def send_batch(self, builder: BatchBuilder, topic: str, *, partition: int) -> Any:
        self.calls += 1
        if self.calls == self.fail_at:
            raise KafkaConnectionError("broker away")
        log = self.log.setdefault(partition, [])
        base = len(log)
        batch = MemoryRecords(bytes(builder._build())).next_batch()  # noqa: SLF001
        log.extend((record.key, record.value) for record in batch)
        acked = asyncio.get_running_loop().create_future()
        acked.set_result(SimpleNamespace(offset=base))
        return acked


class Store:
    """The parts of Faust's RocksDB store the writer uses: one database per partition."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.dbs: dict[int, Rdict] = {}
        self.persisted: dict[TP, int] = {}

    def _db_for_partition(self, partition: int) -> Rdict:
        if partition not in self.dbs:
            self.dbs[partition] = Rdict(str(self.path / str(partition)), Options(raw_mode=True))
        return self.dbs[partition]

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.persisted[tp] = offset

    def contents(self, partition: int) -> dict[bytes, bytes]:
        return dict(self._db_for_partition(partition).items())

    def close(self) -> None:
        for db in self.dbs.values():
            db.close()


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = Store(tmp_path)
    yield s
    s.close()


def writer(producer: Producer, store: Store) -> ChangelogWriter:
    app = SimpleNamespace(producer=SimpleNamespace(_producer=producer))
    table = SimpleNamespace(changelog_topic=SimpleNamespace(get_topic_name=lambda: TOPIC),
                            data=store)
    return ChangelogWriter(app, table)


ENTRIES = [(f"b|0|60000|{i}", {"o": i, "s": {"all": [i, 0, 1]}}) for i in range(12)]


async def test_the_store_holds_the_entries_once_the_changelog_has_them(store: Store) -> None:
    producer = Producer()
    store._db_for_partition(0)[orjson.dumps("c|gone")] = b'{"old":1}'  # noqa: SLF001
    entries = [*ENTRIES, ("c|gone", None), ("t|0", 5)]
    await writer(producer, store).write({0: entries})
    assert producer.log[0] == encode(entries)  # in order, deletions as null values
    assert producer.calls > 1  # several record batches: the case below splits them
    assert store.contents(0) == {k: v for k, v in encode(entries) if v is not None}
    assert store.persisted == {TP(TOPIC, 0): len(entries) - 1}


async def test_a_failed_hand_over_sends_everything_again_and_stores_it_all(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "FIRST_DELAY_S", 0.0)
    producer = Producer(fail_at=3)  # two record batches acknowledged, then the broker is away
    store._db_for_partition(1)[orjson.dumps("c|gone")] = b'{"old":1}'  # noqa: SLF001
    entries = [*ENTRIES, ("c|gone", None), ("t|1", 9)]
    await writer(producer, store).write({1: entries})
    log = producer.log[1]
    # A prefix of the writes, then all of them: what `cxstream.core.batch` replays exactly.
    assert 0 < len(log) - len(entries) < len(entries)
    assert log[len(log) - len(entries):] == encode(entries)
    assert log[:len(log) - len(entries)] == encode(entries)[:len(log) - len(entries)]
    # Every entry in the store, though the write batch was being filled when it failed.
    assert store.contents(1) == {k: v for k, v in encode(entries) if v is not None}
    assert store.persisted == {TP(TOPIC, 1): len(log) - 1}


async def test_an_entry_no_record_batch_can_hold_is_an_error(store: Store) -> None:
    """Never an endless loop of empty record batches. (aiokafka's batches take any first
    record, however large; a builder with a hard limit stands in for one that would not.)"""

    class Strict(BatchBuilder):
        def append(self, *, timestamp: Any, key: Any, value: Any, headers: Any = ()) -> Any:
            return None if len(value or b"") > 300 else super().append(
                timestamp=timestamp, key=key, value=value)

    producer = Producer()
    producer.create_batch = lambda: Strict(200, 0)  # type: ignore[method-assign]
    entries = [*ENTRIES[:2], ("c|huge", {"x": "y" * 500}), *ENTRIES[2:4]]
    with pytest.raises(ValueError, match="a record of 508 bytes does not fit in a producer batch"):
        await writer(producer, store)._send_batches(TOPIC, 0, entries)  # noqa: SLF001
    assert producer.log[0] == encode(ENTRIES[:2])  # what came before it was sent


class Large(Producer):
    """aiokafka's own batch size (256 KiB, as the worker configures it), recording the
    size of each record batch handed over."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(256 * 1024, 0)

    async def send_batch(self, builder: BatchBuilder, topic: str, *, partition: int) -> Any:
        self.sizes.append(len(bytes(builder._build())))  # noqa: SLF001
        return await super().send_batch(builder, topic, partition=partition)


async def test_no_record_batch_is_larger_than_the_changelogs_limit(store: Store) -> None:
    """The broker refuses a record batch over the topic's max.message.bytes whole: the
    writer starts a new one before a record would take it past."""
    producer = Large()
    w = writer(producer, store)
    w.max_message_bytes = 5_000
    entries = [(f"b|0|60000|{i}", {"o": i, "s": {f"plan:{j}": [i] * 8 for j in range(i % 40)}})
               for i in range(60)]
    await w.write({0: entries})
    assert producer.log[0] == encode(entries)
    assert max(producer.sizes) <= 5_000 and len(producer.sizes) > 5


async def test_an_entry_over_the_changelogs_limit_is_never_sent(store: Store) -> None:
    producer = Large()
    w = writer(producer, store)
    w.max_message_bytes = 2_000
    entries = [*ENTRIES[:2], ("c|huge", {"x": "y" * 2_000}), *ENTRIES[2:4]]
    with pytest.raises(ValueError, match="over the state changelog's max.message.bytes"):
        await w.write({0: entries})
    assert all(b"huge" not in (key or b"") for key, _ in producer.log.get(0, []))
    assert store.contents(0) == {}
