"""Fixtures of the unit tests (no broker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxstream.worker.processor import Processor
from cxstream.app import create_app
from cxstream.config.settings import Settings

from .processing import Sink


@pytest.fixture
def processor(tmp_path: Path) -> Processor:
    """A Processor over the memory store, its alert and dead-letter topics `Sink`s."""
    settings = Settings.from_env({"CXSTREAM_DATA_DIR": str(tmp_path)})
    app = create_app(settings)
    proc = Processor(app, settings, app.tables["state"])
    proc.deadletters = Sink()  # type: ignore[assignment]
    proc.alerts = Sink()  # type: ignore[assignment]
    return proc
