"""Reads while a batch is planned (`cxstream.core.store`): the batch in flight over the
store, the partition's entries kept decoded, customer records and journeys always read, and
bucket keys known not to exist never read."""

from __future__ import annotations

from typing import Any

import orjson

from cxstream.core.expiry import ExpiryIndex
from cxstream.core.keys import bucket_key, cap_key, customer_key, journey_key, stream_time_key
from cxstream.core.store import CACHE_MAX, StoreReader

ENTRY = {"o": 7, "s": {"all": [1, 0, 0, 0, 0, 0, 0, 0]}}


class Database(dict):  # type: ignore[type-arg]
    """One partition's RocksDB database, as the reader sees it: JSON bytes, reads counted."""

    def __init__(self, entries: dict[str, Any]) -> None:
        super().__init__({orjson.dumps(k): orjson.dumps(v) for k, v in entries.items()})
        self.reads: list[bytes] = []

    def get(self, key: bytes, default: Any = None) -> Any:
        self.reads.append(key)
        return super().get(key, default)


def test_bucket_keys_missing_from_the_expiry_index_are_not_read() -> None:
    """A bucket the partition's index does not hold is not stored: answered without a read
    (most responses create buckets); everything else is read from the store."""
    stored = bucket_key(0, 60_000, 0)
    db = Database({stored: ENTRY, "c|c-1": {"s": {}, "h": {}}})
    indexes: dict[int, ExpiryIndex] = {}
    reader = StoreReader(lambda p: db, None, indexes)
    new = bucket_key(0, 60_000, 60_000)

    assert reader.get(new) is None and len(db.reads) == 1  # no index yet: read
    index = indexes[0] = ExpiryIndex()
    index.add_bucket(stored, ENTRY)
    reader.clear()
    assert reader.get(new, "none") == "none" and len(db.reads) == 1
    assert reader.get(stored) == ENTRY and len(db.reads) == 2
    assert reader.get("c|c-1") == {"s": {}, "h": {}} and len(db.reads) == 3
    reader.use(1)  # another partition, without an index: read
    assert reader.get(bucket_key(1, 60_000, 0)) is None and len(db.reads) == 4


def test_partition_entries_are_read_once_customer_records_every_time() -> None:
    """Caps, buckets and stream time stay decoded (most messages read them); customer
    records and journeys are read from the store each time (one per customer, most read
    once)."""
    journey = {"v": 3, "j": [], "o": 4}
    db = Database({cap_key(0, "plan"): ["pro"], customer_key("c1"): {"s": {}, "h": {}},
                   journey_key("c1"): journey})
    reader = StoreReader(lambda p: db, None, {})
    for _ in range(3):
        assert reader.get(cap_key(0, "plan")) == ["pro"]
        assert reader.get(stream_time_key(0), "none") == "none"  # absent: remembered too
        assert reader.get(customer_key("c1")) == {"s": {}, "h": {}}
        assert reader.get(journey_key("c1")) == journey
    reader.written([(journey_key("c1"), {**journey, "o": 5})])
    assert reader.get(journey_key("c1")) == journey  # not kept: this fake store still has it
    assert db.reads.count(orjson.dumps(cap_key(0, "plan"))) == 1
    assert db.reads.count(orjson.dumps(stream_time_key(0))) == 1
    assert db.reads.count(orjson.dumps(customer_key("c1"))) == 3
    assert db.reads.count(orjson.dumps(journey_key("c1"))) == 4


def test_written_entries_replace_what_was_kept() -> None:
    db = Database({cap_key(0, "plan"): ["pro"], stream_time_key(0): {"t": 1}})
    reader = StoreReader(lambda p: db, None, {})
    assert reader.get(cap_key(0, "plan")) == ["pro"] and reader.get(stream_time_key(0)) == {"t": 1}
    reader.written([(cap_key(0, "plan"), ["free", "pro"]), (stream_time_key(0), None),
                    (customer_key("c1"), {"s": {}, "h": {}})])
    reads = len(db.reads)
    assert reader.get(cap_key(0, "plan")) == ["free", "pro"]
    assert reader.get(stream_time_key(0), "gone") == "gone"  # deleted
    assert len(db.reads) == reads  # from memory
    assert reader.get(customer_key("c1")) is None  # not kept: read (this fake store lacks it)
    assert len(db.reads) == reads + 1


def test_the_batch_in_flight_is_read_before_the_store() -> None:
    """`top`: the writes not yet in the store (None: deleted) win over it."""
    db = Database({cap_key(0, "plan"): ["pro"], customer_key("c1"): {"s": {}, "h": {"s": 1}}})
    reader = StoreReader(lambda p: db, None, {})
    reader.top = {customer_key("c1"): {"s": {}, "h": {"s": 2}}, cap_key(0, "plan"): None}
    assert reader.get(customer_key("c1")) == {"s": {}, "h": {"s": 2}}
    assert reader.get(cap_key(0, "plan"), "deleted") == "deleted"
    assert db.reads == []
    reader.top = {}
    assert reader.get(customer_key("c1")) == {"s": {}, "h": {"s": 1}}


def test_the_memory_store_is_read_as_it_is() -> None:
    store = {customer_key("c1"): {"s": {}, "h": {}}, cap_key(0, "plan"): ["pro"]}
    reader = StoreReader(None, store, {})
    reader.use(3)
    assert reader.get(customer_key("c1")) == {"s": {}, "h": {}}
    assert reader.get(bucket_key(3, 60_000, 0), "none") == "none"
    reader.written([(cap_key(0, "plan"), ["x"])])  # the store itself holds what is written
    assert reader.get(cap_key(0, "plan")) == ["pro"]
    store[cap_key(0, "plan")] = ["x"]
    assert reader.get(cap_key(0, "plan")) == ["x"]


def test_the_kept_entries_are_bounded() -> None:
    """Past CACHE_MAX entries the memory starts over: read again, never grown without end."""
    keys = [cap_key(0, f"d{i}") for i in range(CACHE_MAX + 1)]
    db = Database({})
    reader = StoreReader(lambda p: db, None, {})
    for key in keys:
        reader.get(key)
    reader.get(keys[0])
    assert len(db.reads) == CACHE_MAX + 2  # the first was dropped with the rest
    reader.get(keys[-1])
    assert len(db.reads) == CACHE_MAX + 2  # the newest was kept
