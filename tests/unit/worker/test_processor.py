"""The processor (`cxstream.worker.processor`): a record the broker cannot take yet is sent again until
acknowledged, and never fails the batch (a failed batch stops the consumer)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

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
