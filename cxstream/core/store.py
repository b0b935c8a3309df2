"""Reads of the state while a batch is planned: the previous batch's writes, still on their
way to the store, over the partition's local store, with its small and hot entries kept
decoded.

Why here, compiled, and not in the agent: every event reads its customer record, and a
response about five entries more; behind the batch's own writes (`batch.PendingWrites`)
each read went through two more layers of Python calls before reaching the store, which
cost more than the read of a cached entry itself. The store is handed in (a database per
partition, or one dict), so this stays free of Faust and testable without a broker.

What is read from where:

* `top`: the writes of the batch being completed (None: deleted), which reach the store
  only once the broker acknowledged them; planning the next batch meanwhile must see them.
* The memory store is one dict, read as it is.
* The RocksDB store keeps one database per partition, holding keys and values as JSON
  (Faust's codec, which orjson reads and writes byte for byte the same). The entries that
  carry their partition in the key (segment buckets, caps, stream time: few, and read by
  most messages) are also kept decoded in memory, written through by `written` and dropped
  at every rebalance (`clear`); customer records and journeys (one each per customer, most
  read once a batch) are not.
* A bucket key that the partition's expiry index does not hold is not in the store (the
  index holds every stored bucket of an owned partition, see `Processor.index`), so it is
  answered without a read: most responses create new minute buckets, and reading keys
  that do not exist took a large share of the worker's time (and filled the cache).

Values read are never mutated (see `cxstream.core.journey`).
"""

from __future__ import annotations

from typing import Any, Callable

import orjson

from cxstream.core import keys
from cxstream.core.expiry import ExpiryIndex

#: Marks a key a dict does not hold (None is a value: a deletion).
_ABSENT: Any = object()
#: Most entries kept decoded (RocksDB); past it, the cache starts over.
CACHE_MAX = 20_000


def stored_value(db: Any, key: str) -> Any:
    """The value of `key` in a partition's RocksDB database (JSON bytes), None when absent."""
    raw = db.get(orjson.dumps(key))
    return None if raw is None else orjson.loads(raw)


class StoreReader:
    """Reads for planning, partition by partition (`use`); see the module docstring.

    `databases`: the RocksDB store's database of a partition, or None for a store that is
    one dict (`store`). `indexes`: the expiry index of each owned partition whose index is
    complete (the Processor's own dict, filled as it builds them)."""

    def __init__(self, databases: Callable[[int], Any] | None, store: Any,
                 indexes: dict[int, ExpiryIndex]) -> None:
        #: The writes of the batch being completed (None: deleted); see the module docstring.
        self.top: dict[str, Any] = {}
        self.partition = 0
        self._databases = databases
        self._dict: Any = store if databases is None else None
        self._db: Any = None
        self._indexes = indexes
        self._cache: dict[str, Any] = {}

    def use(self, partition: int) -> None:
        """Read partition `partition`'s store from now on."""
        self.partition = partition
        if self._databases is not None:
            self._db = self._databases(partition)

    def get(self, key: str, default: Any = None) -> Any:
        value = self.top.get(key, _ABSENT)
        if value is _ABSENT:
            if self._dict is not None:
                value = self._dict.get(key)
            else:
                value = self._cache.get(key, _ABSENT)
                if value is _ABSENT:
                    value = self._read(key)
                    if value is _ABSENT:
                        return default
        return default if value is None else value

    def _read(self, key: str) -> Any:
        """`key` from the partition's database, cached unless kept per customer; _ABSENT
        for a bucket the partition's index says is not stored (not read)."""
        if key.startswith(keys.BUCKET_PREFIX):
            index = self._indexes.get(self.partition)
            if index is not None and key not in index:
                return _ABSENT
        if self._db is None:
            self.use(self.partition)
        value = stored_value(self._db, key)
        if not _per_customer(key):
            cache = self._cache
            if len(cache) >= CACHE_MAX:
                cache.clear()
            cache[key] = value
        return value

    def written(self, entries: list[tuple[str, Any]]) -> None:
        """Entries now in the store (None: deleted)."""
        if self._dict is None:
            cache = self._cache
            for key, value in entries:
                if not _per_customer(key):
                    cache[key] = value

    def clear(self) -> None:
        """Forget what was read (at every rebalance: partitions may change hands)."""
        self._cache.clear()
        self._db = None


def _per_customer(key: str) -> bool:
    """Whether `key` is a customer record or journey (not kept decoded)."""
    return key.startswith(keys.CUSTOMER_PREFIX) or key.startswith(keys.JOURNEY_PREFIX)
