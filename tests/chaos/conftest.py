"""Chaos fixtures (the broker, workers and receivers are the session's, `tests/conftest.py`):
a failed chaos test keeps its logs."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(autouse=True)
def keep_logs_of_failures(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    """A failed chaos test keeps its worker and broker logs in `$CXSTREAM_CHAOS_LOGS` (default
    /tmp/cxstream-chaos-logs/<test>): pytest rotates its tmp dirs away, and these failures are
    the ones worth reading."""
    yield
    if request.node.stash.get(_FAILED, False):
        dest = Path(os.environ.get("CXSTREAM_CHAOS_LOGS", "/tmp/cxstream-chaos-logs")) / request.node.name
        dest.mkdir(parents=True, exist_ok=True)
        for log in [*tmp_path.rglob("worker-*.log"), *tmp_path.rglob("broker.log")]:
            shutil.copy(log, dest / f"{log.parent.name}-{log.name}")
        print(f"logs kept in {dest}")
