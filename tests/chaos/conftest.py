"""Chaos fixtures: the integration fixtures, on the *same* session broker.

Why not `from tests.integration.conftest import *`: pytest would register that session
fixture a second time under this directory, and `pytest tests` would start two brokers. So the
function-scoped fixtures are imported (they resolve `kafka_bootstrap` from here), and
`kafka_bootstrap` here reuses whatever broker the session already has:

1. `CXSTREAM_TEST_BROKER`, when set (CI services, fast local iterations);
2. the broker the integration fixture already started, when it ran first;
3. otherwise it starts the project's broker (as the integration fixture would) and exports
   `CXSTREAM_TEST_BROKER` for the rest of the session, so the integration tests that run
   after these (`tests/chaos` sorts first) reuse it instead of starting their own.

As for the integration tests, a broker that cannot start is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cxstream.broker import LocalBroker, wait_ready
from tests.integration.conftest import _require, http, local_broker_factory, worker_factory  # noqa: F401
from tests.integration.harness import free_port

ENV = "CXSTREAM_TEST_BROKER"


def _already_started(request: pytest.FixtureRequest) -> str | None:
    """The value of another directory's `kafka_bootstrap` fixture, if it is already set up.
    Best effort through pytest internals (a pytest that renames them just means case 3)."""
    manager = getattr(request, "_fixturemanager", None)
    for attr in ("_arg2fixturedefs", "_arg2nodeid2fixturedefs", "_arg2node2fixturedefs"):
        table = getattr(manager, attr, None)
        if not isinstance(table, dict):
            continue
        defs = table.get("kafka_bootstrap")
        defs = list(defs.values()) if isinstance(defs, dict) else list(defs or [])
        for fixturedefs in defs:
            for fd in fixturedefs if isinstance(fixturedefs, (list, tuple)) else [fixturedefs]:
                cached = getattr(fd, "cached_result", None)
                if cached is not None and cached[2] is None and isinstance(cached[0], str):
                    return cached[0]
    return None


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get(ENV) or _already_started(request)
    if external:
        _require(lambda: wait_ready(external, 60), f"the session broker {external} is not usable")
        yield external
        return
    broker = LocalBroker(port=free_port(), data_dir=tmp_path_factory.mktemp("kafka"),
                         controller_port=free_port())
    result = _require(lambda: broker.start(wait_s=120, progress=print),
                      "the test broker could not start")
    os.environ[ENV] = result.bootstrap
    try:
        yield result.bootstrap
    finally:
        os.environ.pop(ENV, None)
        broker.stop()


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
