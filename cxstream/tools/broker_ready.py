"""Readiness of a Kafka broker, local or remote: `wait_ready` (and `wait_ready_async` inside
an event loop) polls until the brokers at an address answer metadata with an active
controller and can name a group coordinator, with aiokafka's connection errors muted while
it polls, and says on timeout whether nothing listened or something that is not a ready
Kafka broker did.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator

from cxstream.tools.broker_errors import BrokerError

#: Consumer group looked up by the readiness check. Consumers (Faust included) log
#: ``GroupCoordinatorNotAvailable`` right after a broker starts; a broker only counts as ready
#: once it can name a group coordinator, which also creates ``__consumer_offsets``.
PROBE_GROUP = "cxstream-readiness-probe"


class _NotReady(BrokerError):
    """wait_ready's timeout; keeps the bare reason so LocalBroker can word its own message."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _split_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    """``kafka://h:p,h2:p2`` or ``h:p`` → [(host, port)]; the scheme is what Settings accepts."""
    hosts: list[tuple[str, int]] = []
    for part in bootstrap.split(","):
        part = part.strip().split("://", 1)[-1]
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit():
            raise BrokerError(f"bad broker address {bootstrap!r}: expected host:port[,host:port]")
        hosts.append((host.strip("[]"), int(port)))
    return hosts


def _tcp_open(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _quiet_aiokafka() -> Iterator[None]:
    """Mute aiokafka's "Unable connect to node" errors while polling a booting broker — only
    for records from this thread, so other clients in the process keep their logs."""
    me = threading.get_ident()

    def keep(record: logging.LogRecord) -> bool:
        return record.thread != me or record.levelno >= logging.CRITICAL

    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
               if name == "aiokafka" or name.startswith("aiokafka.")]
    for lg in loggers:
        lg.addFilter(keep)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(keep)


async def _probe(bootstrap: str, request_timeout_ms: int) -> None:
    """One readiness attempt: metadata with a controller, then a group coordinator.
    Raises whatever the client raised, so the caller can report the last reason."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=request_timeout_ms,
                                client_id="cxstream-readiness")
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        if not cluster.get("brokers") or cluster.get("controller_id", -1) < 0:
            raise RuntimeError("no broker or no active controller in the metadata yet")
        await admin.find_coordinator(PROBE_GROUP)
    finally:
        with contextlib.suppress(Exception):  # closing a client that never connected
            await admin.close()


async def wait_ready_async(bootstrap: str, timeout_s: float = 60.0, *,
                           alive: Callable[[], bool] | None = None) -> None:
    """Async form of :func:`wait_ready`, for callers already inside an event loop."""
    import aiokafka.admin  # noqa: F401 - creates aiokafka's loggers before they are muted

    hosts = _split_bootstrap(bootstrap)
    plain = ",".join(f"{h}:{p}" for h, p in hosts)
    deadline = time.monotonic() + timeout_s
    last_error = "no attempt finished"
    tcp_seen = False
    with _quiet_aiokafka():
        while True:
            if alive is not None and not alive():
                raise BrokerError("the broker process exited during start-up")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            tcp_seen = tcp_seen or any(_tcp_open(h, p) for h, p in hosts)
            try:
                await asyncio.wait_for(_probe(plain, int(min(5.0, max(remaining, 1.0)) * 1000)),
                                       timeout=max(remaining, 0.1))
                return
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
                name, text = type(exc).__name__, str(exc)
                last_error = text if text.startswith(name) else f"{name}: {text}".rstrip(": ")
            await asyncio.sleep(min(0.5, max(deadline - time.monotonic(), 0)))
    if not tcp_seen:
        hint = (f"nothing listens at {plain}: start a broker (`cxstream broker start`) or point "
                "CXSTREAM_BROKER at one")
    else:
        hint = (f"something listens at {plain} but did not answer as a ready Kafka broker (a "
                "non-Kafka port, a TLS/SASL listener, advertised.listeners unreachable from "
                "here, or a broker still starting: check its log)")
    raise _NotReady(f"no ready Kafka broker at {plain} within {timeout_s:g}s; {hint}. "
                    f"Last error: {last_error}", reason=last_error)


def wait_ready(bootstrap: str, timeout_s: float = 60.0, *,
               alive: Callable[[], bool] | None = None) -> None:
    """Block until the broker(s) at ``bootstrap`` answer a metadata request with an active
    controller and can name a group coordinator; any address works, local or remote (PLAINTEXT).

    A TCP connect alone is not enough: the socket opens seconds before KRaft has elected its
    controller, and clients that start then fail with coordinator errors. ``alive`` lets
    :meth:`LocalBroker.start` stop waiting as soon as its JVM dies. Raises :class:`BrokerError`
    saying whether nothing listened or something listened but did not answer as Kafka.
    Call it from synchronous code; inside an event loop use :func:`wait_ready_async`.
    """
    asyncio.run(wait_ready_async(bootstrap, timeout_s, alive=alive))
