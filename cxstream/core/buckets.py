"""Summing bucket counters over a window, given read access to the state."""

from __future__ import annotations

from typing import Any, Callable

from cxstream.core import keys
from cxstream.core.scoring import merge, zero
from cxstream.core.windows import cover


def window_counts(get: Callable[[str], Any], partition: int, segment: str, start: int,
                  end: int) -> list[int]:
    """Exact counts of `segment` in partition `partition` for [start, end) (whole minutes).

    Stored bucket values are the 8 counters followed by the last applied source offset.
    """
    acc = zero()
    for res, bstart in cover(start, end):
        value = get(keys.bucket_key(partition, segment, res, bstart))
        if value is not None:
            acc = merge(acc, value[:-1])
    return acc
