"""Small helpers only the chaos tests need (the shared ones are in tests/integration/harness.py)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from tests.integration.harness import Worker, readyz


async def processed_at_least(w: Worker, n: float) -> bool:
    """Whether the worker's current process has handled `n` input messages (False while it
    does not answer, e.g. still starting)."""
    try:
        return await w.events_total() >= n
    except Exception:  # noqa: BLE001 - not up yet / restarting
        return False


@dataclass
class ReadyWatch:
    """Polls `/readyz` in the background and keeps every (monotonic time, status) seen."""

    worker: Worker
    interval_s: float = 0.25
    seen: list[tuple[float, int | None]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.seen.append((time.monotonic(), await readyz(self.worker, timeout_s=1.0)))
            await asyncio.sleep(self.interval_s)

    def start(self) -> "ReadyWatch":
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def statuses(self, since: float = 0.0, until: float = float("inf")) -> list[int | None]:
        return [s for t, s in self.seen if since <= t <= until]
