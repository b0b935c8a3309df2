"""The processor (`cxstream.worker.processor`): a record the broker cannot take yet is sent again until
acknowledged, and never fails the batch (a failed batch stops the consumer)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from faust.types import TP

from cxstream.kafka import retry
from cxstream.worker.processor import Processor

from ..processing import Changelog, Sink, handle


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


async def test_a_response_past_a_bound_is_dead_lettered_with_its_code(
        processor: Processor) -> None:
    """Bounds never stop the stream: a response that would add a dimension past the cap
    counts without it (an informational dead letter, `counted`); one that would make its day
    entry too large for a changelog record is not counted (`entry_too_large`); both are
    dead-lettered with their source position, and what follows is processed."""
    from dataclasses import replace

    processor.changelog = Changelog()  # type: ignore[assignment]
    processor.cfg = replace(processor.cfg, max_dims=2, entry_max_bytes=1_000)
    topic = processor.topics.surveys
    values = [survey(0, 9, segment={"a": "x", "b": "y", "c": "z"}),
              survey(1, 9, segment={"a": "x" * 120, "b": "y" * 120},
                     occurred_at="2026-01-01T00:00:01Z"),
              survey(2, 3, segment={"a": "x"}, occurred_at="2026-01-01T00:00:02Z")]
    records = [SimpleNamespace(topic=topic, partition=0, offset=i, key=b"c-1", value=v)
               for i, v in enumerate(values)]  # one batch: the fake changelog stores nothing
    await (await processor.process({TP(topic, 0): records}))
    sink: Any = processor.deadletters
    docs = [orjson.loads(d["value"]) for d in sink.sent]
    assert [(d["source_offset"], d["error_code"], d.get("counted")) for d in docs] == [
        (0, "too_many_dimensions", True), (1, "entry_too_large", None)]
    [batch] = processor.changelog.writes  # type: ignore[attr-defined]
    day = dict(batch[0])["b|0|86400000|1767225600000"]
    assert set(day["s"]) == {"all", "a:x", "b:y"}  # not "c" (the cap), nor offset 1's values
    assert day["o"] == 2 and day["s"]["all"][:3] == [1, 0, 1]  # offsets 0 and 2 counted


async def test_target_sums_a_crash_left_behind_are_deleted_when_the_partition_is_taken_on(
        processor: Processor) -> None:
    """A crash between writing a target decision and deleting its sums leaves the sums of a
    decided window (`cxstream.core.targets.stale_reports`): the processor deletes them with
    the partition's first batch, and only them."""
    processor.changelog = Changelog()  # type: ignore[assignment]
    store: Any = processor.state.data
    store["s|0"] = {"d": 3_600_000, "below": [], "pending": [7_200_000]}
    store["r|0|3600000"] = {"n": 2, "seen": {"0.0": 1}, "c": {}}  # decided: left behind
    store["r|0|7200000"] = {"n": 2, "seen": {"1.0": 1}, "c": {}}  # still waiting
    store["r|1|3600000"] = {"n": 2, "seen": {"0.0": 1}, "c": {}}  # another partition's
    await handle(processor, processor.topics.surveys, survey(0, 9), offset=0)
    [batch] = processor.changelog.writes  # type: ignore[attr-defined]
    deleted = {key for key, value in batch[0] if value is None}
    assert deleted == {"r|0|3600000"}
