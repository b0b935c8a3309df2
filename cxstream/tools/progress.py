"""Progress for long-running commands, on stderr so stdout stays machine-readable.

On a terminal it redraws one line; elsewhere (CI logs) it prints a line every few seconds.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, label: str, total: int | None = None, *, unit: str = "msgs",
                 stream: TextIO | None = None, every_s: float = 5.0) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every_s = every_s if not self.tty else 0.1
        self.done = 0
        self.started = time.monotonic()
        self._last = 0.0

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self._draw(final=False)

    def _draw(self, *, final: bool) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 30)
            text = (f"{self.label} [{bar:<30}] {self.done}/{self.total} {self.unit} "
                    f"({frac:.0%}, {rate:,.0f}/s)")
        else:
            text = f"{self.label} {self.done} {self.unit} ({rate:,.0f}/s)"
        if self.tty:
            self.stream.write("\r" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        self._draw(final=True)
