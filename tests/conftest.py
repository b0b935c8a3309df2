"""Fixtures shared by the integration and chaos tests: a real Kafka broker for the session,
real worker processes, Prometheus servers and receivers per test (the unit tests use none).

The broker is the project's own local KRaft broker (or `CXSTREAM_TEST_BROKER=host:port`),
one for the whole session whichever directories run. If it cannot start, every test that
needs it fails with the reason: they are never skipped.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from cxstream.tools.broker import BrokerError, LocalBroker, wait_ready

from tests.integration.harness import Worker, free_port, unique_prefix
from tests.integration.prom import PrometheusServer
from tests.integration.receivers import HttpReceiver

T = TypeVar("T")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to test a compiled core older than its source: Python imports the compiled
    module, so the tests would pass or fail on code that is no longer in the checkout."""
    from cxstream import core

    in_checkout = Path(core.__file__).resolve().is_relative_to(Path(__file__).resolve().parents[1])
    if in_checkout and (old := core.stale()):
        pytest.exit(f"the compiled cxstream.core modules {', '.join(old)} are older than their "
                    "source: run `make install` (or `pip install -e .`) to compile them again, "
                    "or delete cxstream/core/*.so to test the Python source", returncode=2)
    if os.environ.get("CXSTREAM_REQUIRE_COMPILED") == "1" and not core.compiled():
        pytest.exit("CXSTREAM_REQUIRE_COMPILED=1, but the core runs as plain Python: the "
                    "install could not compile it (its output says why)", returncode=2)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a ready Kafka broker shared by the whole session.

    ``CXSTREAM_TEST_BROKER`` reuses a running broker (fast local iterations, CI services);
    otherwise the project's own broker starts on free ports with a fresh data dir, so runs never
    see each other's topics or groups. Failure to get a broker is a test failure, never a skip:
    a skipped integration suite looks green.
    """
    external = os.environ.get("CXSTREAM_TEST_BROKER")
    if external:
        _require(lambda: wait_ready(external, 60), f"CXSTREAM_TEST_BROKER={external} is not usable")
        yield external
        return
    broker = LocalBroker(port=free_port(), data_dir=tmp_path_factory.mktemp("kafka"),
                         controller_port=free_port())
    result = _require(lambda: broker.start(wait_s=120, progress=print),
                      "the test broker could not start")
    try:
        yield result.bootstrap
    finally:
        broker.stop()


def _require(action: Callable[[], T], problem: str) -> T:
    """Run ``action``; a BrokerError becomes a test failure (never a skip) whose report is
    just the problem and the broker's explanation (log tail included)."""
    try:
        return action()
    except BrokerError as exc:
        error = f"{problem}: {exc}"
    pytest.fail(error, pytrace=False)  # outside `except`: no chained traceback in the report


@pytest.fixture
def local_broker_factory(tmp_path: Path) -> Iterator[Callable[..., LocalBroker]]:
    """Extra brokers a test starts and stops itself (stopped at teardown in any case), on free
    ports with their own data dirs under the test's ``tmp_path``."""
    made: list[LocalBroker] = []

    def make(**kwargs: object) -> LocalBroker:
        kwargs.setdefault("port", free_port())
        kwargs.setdefault("controller_port", free_port())
        kwargs.setdefault("data_dir", tmp_path / f"kafka{len(made)}")
        b = LocalBroker(**kwargs)  # type: ignore[arg-type]
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


@pytest.fixture
def worker_factory(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Workers on the session broker; workers from one call to the factory share a prefix
    unless given their own. All are killed at teardown."""
    made: list[Worker] = []
    prefix = unique_prefix()

    def make(*, prefix: str = prefix, name: str | None = None, **kwargs: object) -> Worker:
        w = Worker(bootstrap=kafka_bootstrap, prefix=prefix,
                   data_dir=tmp_path / (name or f"w{len(made)}"), **kwargs)  # type: ignore[arg-type]
        made.append(w)
        return w

    yield make
    for w in made:
        w.kill()


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[..., PrometheusServer]]:
    """Real Prometheus servers (Debian's `prometheus`) scraping the given ``host:port``
    targets every second, on free ports with their TSDB under the test's ``tmp_path``; all
    stopped at teardown. A missing binary fails the test (`make system-deps`), never skips."""
    made: list[PrometheusServer] = []

    def make(targets: list[str], **kwargs: object) -> PrometheusServer:
        server = PrometheusServer(data_dir=tmp_path / f"prometheus{len(made)}", targets=targets,
                                  **kwargs)  # type: ignore[arg-type]
        made.append(server)
        server.start()
        return server

    yield make
    for server in made:
        server.stop()


@pytest.fixture
async def http() -> AsyncIterator[HttpReceiver]:
    """A local webhook receiver (HTTP on loopback) that checks signatures and records deliveries."""
    r = HttpReceiver()
    await r.start()
    yield r
    await r.stop()
