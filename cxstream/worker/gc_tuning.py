"""The garbage-collector settings of the worker's hot path, in one place (the bench measures
the pure step with the same ones).

Why: planning a message allocates a few hundred short-lived objects; with Python's default
threshold (700 allocations) the young generation is collected every few messages, and each
collection also walks the survivors, a large share of the pure step's time. Those objects
are freed by reference counting, not by the collector: a young collection finds next to no
cycle to free. So a far higher threshold keeps no more memory alive, and makes the
collections, and the time they take, rare (figures: docs/performance.md).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

THRESHOLDS = (1_000_000, 50, 50)


def tune() -> tuple[int, int, int]:
    """Apply `THRESHOLDS`; returns the previous ones."""
    previous = gc.get_threshold()
    gc.set_threshold(*THRESHOLDS)
    return previous


@contextmanager
def tuned() -> Iterator[None]:
    """`THRESHOLDS` for the duration of the block."""
    previous = tune()
    try:
        yield
    finally:
        gc.set_threshold(*previous)
