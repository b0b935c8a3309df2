"""Integration fixtures: a real Kafka broker for the session, real worker processes per test.

The broker is the project's own local KRaft broker (or `CXSTREAM_TEST_BROKER=host:port`).
If it cannot start, every integration test fails with the reason: they are never skipped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import pytest

from cxstream.broker import BrokerError, LocalBroker, wait_ready

from .harness import Worker, free_port, unique_prefix


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("CXSTREAM_TEST_BROKER")
    if external:
        try:
            wait_ready(external, 60)
        except BrokerError as exc:
            pytest.fail(f"CXSTREAM_TEST_BROKER={external} is not usable: {exc}")
        yield external
        return
    broker = LocalBroker(port=free_port(), data_dir=tmp_path_factory.mktemp("kafka"))
    try:
        result = broker.start(wait_s=120, progress=print)
    except BrokerError as exc:
        pytest.fail(f"the test broker could not start: {exc}")
    yield result.bootstrap
    broker.stop()


@pytest.fixture
def local_broker_factory(tmp_path: Path) -> Iterator[Callable[..., LocalBroker]]:
    """Extra brokers a test starts and stops itself (stopped at teardown in any case)."""
    made: list[LocalBroker] = []

    def make(**kwargs: object) -> LocalBroker:
        b = LocalBroker(port=free_port(), data_dir=tmp_path / f"kafka{len(made)}", **kwargs)  # type: ignore[arg-type]
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
