"""Sending to Kafka until the broker acknowledges: one backoff for every record cxstream must
not lose (alerts, dead letters, state writes, the notifier's sent-state and dead letters).

Why: while the broker is away, a send fails with a KafkaError; giving up would drop the
record, and an offset commit could then pass the message that produced it. Each caller keeps
its own order of sends; this only waits and sends again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 10.0


async def until_acknowledged(attempt: Callable[[], Awaitable[T]], what: str, *,
                             first: Awaitable[T] | None = None) -> T:
    """The broker's answer to `first` (a send already under way) or to `attempt()`; while it
    fails with a KafkaError, wait (0.5 s, doubling up to 10 s) and `attempt()` again. `what`
    names the record in the warning (no customer data)."""
    delay = FIRST_DELAY_S
    pending = first if first is not None else attempt()
    while True:
        try:
            return await pending
        except KafkaError as exc:
            log.warning("%s not acknowledged (%s); sending it again in %.1fs", what,
                        type(exc).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)
            pending = attempt()
