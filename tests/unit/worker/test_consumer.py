"""Batches below Faust's streams: acknowledged only when complete, a rebalance waits for them,
re-fetched records are skipped, offset holes do not stop commits; and a batch planned while
the previous one is still being written sees that one's writes.

Runs Faust's real consumer bookkeeping and its commit-offset computation (`_new_offset`),
without a broker: `cxstream.worker.consumer` hands records over and acknowledges them; what is
committed is Faust's decision.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from faust.types import TP

from cxstream.worker.processor import Processor
from cxstream.app import create_app
from cxstream.worker.consumer import InFlight
from cxstream.config.settings import Settings

from ..processing import Sink

TOPIC = "cx.surveys"


def record(offset: int, value: bytes = b"{}", partition: int = 0, key: bytes = b"c-1") -> Any:
    return SimpleNamespace(topic=TOPIC, partition=partition, offset=offset, key=key, value=value)


@pytest.fixture
def app(tmp_path: Path) -> Any:
    return create_app(Settings.from_env({"CXSTREAM_DATA_DIR": str(tmp_path)}))


def in_flight(consumer: Any) -> list[InFlight]:
    return [m for m in consumer._unacked_messages if isinstance(m, InFlight)]  # noqa: SLF001


def held_back(consumer: Any) -> list[asyncio.Future[None]]:
    """Makes every batch handed to `consumer` wait until the test completes its future here."""
    rests: list[asyncio.Future[None]] = []

    async def on_batch(batch: Any, fetched_at: float) -> asyncio.Future[None]:
        rests.append(asyncio.get_running_loop().create_future())
        return rests[-1]

    consumer.on_batch = on_batch
    return rests


async def test_a_batch_is_acknowledged_only_once_complete_and_the_next_waits(app: Any) -> None:
    consumer = app.consumer
    tp = TP(TOPIC, 0)
    rests = held_back(consumer)
    await consumer._handle({tp: [record(0), record(1), record(2)]}, 0.0)  # noqa: SLF001
    # Handed over, not complete: nothing acknowledged, and a rebalance would wait for it.
    assert consumer._new_offset(tp) is None  # noqa: SLF001
    assert [m.offset for m in in_flight(consumer)] == [0]

    second = asyncio.ensure_future(consumer._handle({tp: [record(3)]}, 0.0))  # noqa: SLF001
    await asyncio.sleep(0.01)
    assert not second.done()  # the next batch is planned, but waits for the first to finish
    rests[0].set_result(None)
    await second
    assert consumer._new_offset(tp) == 3  # noqa: SLF001 - offsets 0-2 committable
    assert [m.offset for m in in_flight(consumer)] == [3]

    rests[1].set_result(None)
    await consumer._finishing  # noqa: SLF001
    assert consumer._new_offset(tp) == 4  # noqa: SLF001
    assert in_flight(consumer) == []


async def test_a_stop_lets_the_batches_handed_over_complete_and_acknowledges_them_in_order(
        app: Any) -> None:
    consumer = app.consumer
    tp = TP(TOPIC, 0)
    rests = held_back(consumer)
    await consumer._handle({tp: [record(0), record(1)]}, 0.0)  # noqa: SLF001
    second = asyncio.ensure_future(consumer._handle({tp: [record(2)]}, 0.0))  # noqa: SLF001
    await asyncio.sleep(0.01)
    second.cancel()  # a stop cancels the fetch loop while it waits for the previous batch
    with pytest.raises(asyncio.CancelledError):
        await second
    rests[1].set_result(None)  # the later batch's work ends first...
    await asyncio.sleep(0.01)
    assert list(consumer._acked[tp]) == []  # noqa: SLF001 - ...but is not acknowledged before
    rests[0].set_result(None)
    await consumer._let_finish()  # noqa: SLF001 - what the stop awaits
    assert consumer._new_offset(tp) == 3  # noqa: SLF001 - both batches committable
    assert in_flight(consumer) == []


async def test_input_records_fetched_before_the_rebalance_ends_are_read_again(app: Any) -> None:
    # The recovery resumes the input partitions, then seeks them back to their committed
    # offsets, and only then ends the rebalance: what is delivered meanwhile is read twice.
    consumer = app.consumer
    tp = TP(TOPIC, 0)
    handed: list[Any] = []
    seeks: list[None] = []

    async def on_batch(batch: Any, fetched_at: float) -> asyncio.Future[None]:
        handed.append(batch)
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def perform_seek() -> None:
        seeks.append(None)

    consumer.on_batch = on_batch
    consumer.batch_topics = frozenset({TOPIC})
    consumer.highwater = lambda tp: 10
    consumer.perform_seek = perform_seek
    consumer.resume_flow()
    app.rebalancing = True
    await consumer._deliver({tp: [record(0), record(1)]}, None, 0.0)  # noqa: SLF001
    assert (handed, len(seeks), consumer._read_offset[tp]) == ([], 1, None)  # noqa: SLF001
    app.rebalancing = False
    await consumer._deliver({tp: [record(0), record(1)]}, None, 0.0)  # noqa: SLF001
    await consumer._finishing  # noqa: SLF001
    assert [[r.offset for r in b[tp]] for b in handed] == [[0, 1]]
    assert len(seeks) == 1


async def test_a_failed_batch_is_never_acknowledged(app: Any) -> None:
    consumer = app.consumer
    tp = TP(TOPIC, 0)

    async def on_batch(batch: Any, fetched_at: float) -> asyncio.Future[None]:
        failed = asyncio.get_running_loop().create_future()
        failed.set_exception(RuntimeError("state store unavailable"))
        return failed

    consumer.on_batch = on_batch
    await consumer._handle({tp: [record(0)]}, 0.0)  # noqa: SLF001
    with pytest.raises(RuntimeError):
        await consumer._finishing  # noqa: SLF001
    assert consumer._new_offset(tp) is None  # noqa: SLF001
    assert in_flight(consumer) == []  # a rebalance does not wait for it forever


async def test_refetched_records_are_skipped_and_holes_do_not_stop_commits(app: Any) -> None:
    consumer = app.consumer
    tp = TP(TOPIC, 0)
    consumer._committed_offset[tp] = 5  # noqa: SLF001
    consumer._read_offset[tp] = 5  # noqa: SLF001 - what a seek back to the committed offset sets
    fresh = await consumer._unread(tp, [record(o) for o in (3, 4, 5, 6, 9)])  # noqa: SLF001
    assert [r.offset for r in fresh] == [5, 6, 9]  # 7 and 8 are missing (transaction markers)
    consumer._ack_batch({tp: fresh})  # noqa: SLF001
    assert consumer._new_offset(tp) == 10  # noqa: SLF001


class _SlowChangelog:
    """The changelog writer, held until the test lets it write (to the real memory store)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.go = asyncio.Event()

    async def write(self, writes: dict[int, list[tuple[str, Any]]]) -> None:
        await self.go.wait()
        for partition, entries in writes.items():
            self.real._apply(TP("changelog", partition), entries, None,  # noqa: SLF001
                             len(entries) - 1)


async def test_a_batch_planned_before_the_previous_is_written_sees_its_writes(app: Any) -> None:
    settings = Settings.from_env({})
    processor = Processor(app, settings, app.tables["state"])
    processor.changelog = _SlowChangelog(processor.changelog)  # type: ignore[assignment]
    processor.alerts = Sink()  # type: ignore[assignment]
    tp = TP(processor.topics.surveys, 0)

    def survey(event_id: str, score: int, at: str) -> Any:
        return SimpleNamespace(topic=tp.topic, partition=0, offset=int(event_id), key=b"c-1",
                               value=orjson.dumps({"event_id": event_id, "customer_id": "c-1",
                                                   "survey": "nps", "score": score, "occurred_at": at}))

    first = await processor.process({tp: [survey("1", 2, "2026-01-01T00:00:00Z")]})
    second = await processor.process({tp: [survey("2", 9, "2026-01-01T01:00:00Z")]})
    assert not first.done()  # still being written: the second read its writes from the overlay
    processor.changelog.go.set()  # type: ignore[attr-defined]
    await asyncio.gather(first, second)
    assert [orjson.loads(a["value"])["kind"] for a in processor.alerts.sent  # type: ignore[attr-defined]
            ] == ["detractor", "recovered"]
    assert processor.overlay == {}  # in the store now
    customer = processor.reader.get("c|c-1")
    assert customer["h"]["s"] == 2


def recovering(app: Any, applied: dict[int, int]) -> list[dict[TP, int]]:
    """Puts Faust's recovery in its active phase, with the last changelog offset applied per
    partition; returns the seeks the consumer will be asked for."""
    changelog = next(iter(app.tables.changelog_topics))
    recovery = app.tables.recovery
    recovery.in_recovery = True
    for partition, offset in applied.items():
        recovery.active_tps.add(TP(changelog, partition))
        recovery.active_offsets[TP(changelog, partition)] = offset
    seeks: list[dict[TP, int]] = []

    async def seek_wait(offsets: dict[TP, int]) -> None:
        seeks.append(dict(offsets))

    async def perform_seek() -> None:
        pass

    consumer = app.consumer
    consumer.seek_wait = seek_wait
    consumer.perform_seek = perform_seek
    consumer.batch_topics = frozenset({TOPIC})
    consumer.highwater = lambda tp: 10_000
    return seeks


def changelog_records(app: Any, partition: int, offsets: range) -> tuple[TP, list[Any]]:
    changelog = next(iter(app.tables.changelog_topics))
    return TP(changelog, partition), [
        SimpleNamespace(topic=changelog, partition=partition, offset=o, key=b"k", value=b"1",
                        timestamp=0, timestamp_type=0, headers=[], checksum=None,
                        serialized_key_size=1, serialized_value_size=1)
        for o in offsets]


async def test_changelog_records_dropped_as_the_flow_stops_are_read_again(app: Any) -> None:
    # A fetch that arrives while the flow is stopped is dropped; nothing would read its
    # changelog records again, and the recovery would miss them or wait for them forever.
    seeks = recovering(app, {0: -1, 1: 41, 2: 7})
    consumer = app.consumer
    consumer.stop_flow()
    cl0, recs0 = changelog_records(app, 0, range(0, 5))
    cl1, recs1 = changelog_records(app, 1, range(42, 50))
    cl3, recs3 = changelog_records(app, 3, range(0, 5))  # not under recovery here
    await consumer._deliver({cl0: recs0, cl1: recs1, cl3: recs3,  # noqa: SLF001
                             TP(TOPIC, 0): [record(0)]}, None, 0.0)
    assert seeks == [{cl0: 0, cl1: 42}]  # the next offsets the recovery needs, inputs aside


async def test_changelog_records_of_a_partition_paused_meanwhile_are_read_again(app: Any) -> None:
    seeks = recovering(app, {0: 99})
    cl0, recs0 = changelog_records(app, 0, range(100, 110))
    consumer = app.consumer
    consumer.resume_flow()
    await consumer._deliver({cl0: recs0}, set(), 0.0)  # noqa: SLF001 - cl0 not fetchable now
    assert seeks == [{cl0: 100}]


async def test_the_rest_of_a_fetch_cut_short_by_a_new_generation_is_read_again(app: Any) -> None:
    seeks = recovering(app, {0: -1, 1: -1})
    cl0, recs0 = changelog_records(app, 0, range(0, 3))
    cl1, recs1 = changelog_records(app, 1, range(0, 3))
    consumer = app.consumer
    consumer.resume_flow()
    delivered: list[int] = []

    async def callback(message: Any) -> None:
        delivered.append(message.offset)
        app.consumer_generation_id += 1  # a rebalance right after the first record

    consumer.callback = callback
    await consumer._deliver({cl0: recs0, cl1: recs1}, None, 0.0)  # noqa: SLF001
    assert delivered == [0]
    assert seeks == [{cl0: 0, cl1: 0}]


async def test_dropped_changelog_records_are_left_alone_outside_a_recovery(app: Any) -> None:
    seeks = recovering(app, {0: 5})
    app.tables.recovery.in_recovery = False  # the next recovery seeks every partition itself
    consumer = app.consumer
    consumer.stop_flow()
    cl0, recs0 = changelog_records(app, 0, range(6, 9))
    await consumer._deliver({cl0: recs0}, None, 0.0)  # noqa: SLF001
    assert seeks == []
