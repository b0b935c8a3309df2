"""The worker checks co-partitioning at every assignment, from its consumer's metadata:
topics given partitions while the workers run, or a worker started without `cxstream
worker`'s check, stop the worker with the fix instead of splitting customers' state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from faust.types import TP

from cxstream.app import create_app
from cxstream.config.settings import Settings
from cxstream.kafka.admin import TopicError, state_changelog
from cxstream.kafka.topics import Topics


def app_seeing(tmp_path: Path, counts: dict[str, int | None],
               monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Settings]:
    settings = Settings.from_env({"CXSTREAM_DATA_DIR": str(tmp_path)})
    app = create_app(settings)
    monkeypatch.setattr(app.consumer, "topic_partitions", counts.get)
    return app, settings


def shape(settings: Settings, surveys: int, interactions: int, customers: int,
          changelog: int | None) -> dict[str, int | None]:
    t = Topics(settings.topic_prefix)
    return {t.surveys: surveys, t.interactions: interactions, t.customers: customers,
            state_changelog(settings): changelog}


async def assign(app: Any) -> None:
    await app.on_partitions_assigned.send({TP("cx.surveys", 0)})


async def test_co_partitioned_topics_pass(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.from_env({"CXSTREAM_DATA_DIR": str(tmp_path)})
    app, _ = app_seeing(tmp_path, shape(settings, 4, 4, 4, 4), monkeypatch)
    await assign(app)


async def test_an_input_given_partitions_while_running_stops_the_worker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.from_env({"CXSTREAM_DATA_DIR": str(tmp_path)})
    app, _ = app_seeing(tmp_path, shape(settings, 4, 6, 4, 4), monkeypatch)
    with pytest.raises(TopicError, match="cx.interactions has 6.*--partitions 6"):
        await assign(app)
    assert "stopping the worker: the input topics must have the same number" in caplog.text


async def test_a_changelog_of_another_size_stops_the_worker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.from_env({"CXSTREAM_DATA_DIR": str(tmp_path)})
    app, _ = app_seeing(tmp_path, shape(settings, 6, 6, 6, 4), monkeypatch)
    with pytest.raises(TopicError, match="CXSTREAM_PARTITIONS=6"):  # the setting says 4
        await assign(app)


async def test_topics_missing_from_the_metadata_are_not_judged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before the consumer has metadata (None), nothing is concluded."""
    settings = Settings.from_env({"CXSTREAM_DATA_DIR": str(tmp_path)})
    counts = shape(settings, 4, 6, 4, 4)
    counts[Topics(settings.topic_prefix).customers] = None
    app, _ = app_seeing(tmp_path, counts, monkeypatch)
    await assign(app)
