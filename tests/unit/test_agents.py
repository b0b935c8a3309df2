"""The processor (`cxstream.agents`): a record the broker cannot take yet is sent again until
acknowledged, and never fails the batch (a failed batch stops the consumer); reads of the
store skip the bucket keys known not to exist."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

from cxstream import agents, retry
from cxstream.agents import Processor
from cxstream.core.expiry import ExpiryIndex
from cxstream.core.keys import bucket_key

from .processing import Changelog, Sink, handle


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "FIRST_DELAY_S", 0.01)


def survey(offset: int, score: int, **overrides: Any) -> bytes:
    return orjson.dumps({"event_id": f"e-{offset}", "customer_id": "c-1", "survey": "nps",
                         "score": score, "occurred_at": "2026-01-01T00:00:00Z", **overrides})


async def test_dead_letters_that_cannot_be_handed_over_are_sent_again(processor: Processor) -> None:
    sink = Sink([KafkaConnectionError(), KafkaTimeoutError()])
    processor.deadletters = sink  # type: ignore[assignment]
    topic = processor.topics.surveys
    await handle(processor, topic, b"{not json", offset=0)
    await handle(processor, topic, survey(1, 42), offset=1)
    docs = [orjson.loads(d["value"]) for d in sink.sent]
    assert [(d["source_offset"], d["error_code"]) for d in docs] == [
        (0, "not_json"), (1, "score_out_of_range")]
    assert not sink.failures


async def test_alerts_that_cannot_be_handed_over_are_sent_again(processor: Processor) -> None:
    sink = Sink([KafkaConnectionError()])
    processor.alerts = sink  # type: ignore[assignment]
    processor.changelog = Changelog()  # type: ignore[assignment]
    await handle(processor, processor.topics.surveys, survey(0, 2), offset=0)
    [alert] = [orjson.loads(a["value"]) for a in sink.sent]
    assert alert["kind"] == "detractor" and alert["customer_id"] == "c-1"
    # The customer record that remembers the turn is written once the alert is acknowledged.
    [writes] = processor.changelog.writes  # type: ignore[attr-defined]
    assert any(key == "c|c-1" for key, _ in writes[0])


class Database(dict):
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
    entry = {"o": 7, "s": {"all": [1, 0, 0, 0, 0, 0, 0, 0]}}
    db = Database({stored: entry, "c|c-1": {"s": {}, "h": {}}})
    table = SimpleNamespace(data=SimpleNamespace(_db_for_partition=lambda p: db))
    indexes: dict[int, ExpiryIndex] = {}
    reader = agents._PartitionReader(table, indexes)  # noqa: SLF001
    new = bucket_key(0, 60_000, 60_000)

    assert reader.get(new) is None and len(db.reads) == 1  # no index yet: read
    index = indexes[0] = ExpiryIndex()
    index.add_bucket(stored, entry)
    reader.clear()
    assert reader.get(new, "none") == "none" and len(db.reads) == 1
    assert reader.get(stored) == entry and len(db.reads) == 2
    assert reader.get("c|c-1") == {"s": {}, "h": {}} and len(db.reads) == 3
    reader.partition = 1  # another partition, without an index: read
    assert reader.get(bucket_key(1, 60_000, 0)) is None and len(db.reads) == 4
