"""Keep a background loop running: log, count and restart it after a backoff when it fails.

Why: the notifier runs as a task inside the worker's Faust app, and an exception leaving a
Faust task stops the whole worker. A notification problem (a Kafka error of the notifier's
own clients, a refused commit, a bug) must never stop scoring and alerting, nor crash the
worker again on the same alert after each restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import NoReturn

from aiokafka.errors import CommitFailedError, KafkaError

from cxstream import metrics
from cxstream.kafka.retry import PermanentKafkaError

log = logging.getLogger(__name__)

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 60.0
#: A run that lasted this long was healthy: the next failure waits FIRST_DELAY_S again.
HEALTHY_AFTER_S = 120.0


def reason_of(exc: BaseException) -> str:
    """The `reason` label of `cxstream_notifier_errors_total` for a loop that stopped on `exc`."""
    if isinstance(exc, CommitFailedError):
        return "commit_failed"
    if isinstance(exc, (KafkaError, PermanentKafkaError)):
        return "kafka"
    return "error"


async def supervise(run_once: Callable[[], Awaitable[None]], what: str, *,
                    first_delay_s: float = FIRST_DELAY_S,
                    max_delay_s: float = MAX_DELAY_S) -> NoReturn:
    """Run `run_once()` again and again, forever: each time it raises (or returns), count it
    in `cxstream_notifier_errors_total{reason}`, log the exception's type (never its text,
    which may quote payload), wait, and start it again. The wait doubles from `first_delay_s`
    up to `max_delay_s`, and starts over after a run that lasted `HEALTHY_AFTER_S`.

    Only cancellation (the worker stopping) ends it: CancelledError, KeyboardInterrupt and
    SystemExit pass through."""
    delay = first_delay_s
    while True:
        started = time.monotonic()
        try:
            await run_once()
            reason, error = "error", "a normal return"
        except Exception as exc:  # noqa: BLE001 - the point: nothing here may stop the worker
            reason, error = reason_of(exc), type(exc).__name__
        if time.monotonic() - started >= HEALTHY_AFTER_S:
            delay = first_delay_s
        metrics.NOTIFIER_ERRORS.labels(reason).inc()
        log.error("%s stopped with %s; restarting it in %.0fs (the worker goes on; alerts not "
                  "yet committed are notified again, with the same webhook-id)", what, error,
                  delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay_s)
