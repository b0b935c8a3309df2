"""Bucket bookkeeping, independent of where buckets are stored.

Writing: a response adds to its three buckets (minute, hour, UTC day) in each of its
segments. Reading: a window [start, end) is the sum of the aligned buckets `cover` returns.
Keys stay tuples here; the worker encodes them (see `keys.bucket_key`).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence, TypeAlias

from cxstream.core import keys
from cxstream.core.model import SurveyResponse
from cxstream.core.scoring import WIDTH, Counts, merge, zero
from cxstream.core.windows import bucket_keys_for, cover

__all__ = ["BucketKey", "increments", "query", "window_counts"]

#: (segment, resolution_ms, bucket_start_ms)
BucketKey: TypeAlias = tuple[str, int, int]


def increments(response: SurveyResponse, segment_keys: Sequence[str]) -> list[BucketKey]:
    """The buckets `response` must be added to: 3 per segment, whatever the windows.

    Refuses repeated segments, which would count the response twice in one bucket.
    """
    if len(set(segment_keys)) != len(segment_keys):
        raise ValueError("segment keys must not repeat")
    per_event = bucket_keys_for(response.occurred_at)
    return [(segment, res, start) for segment in segment_keys for res, start in per_event]


def query(get: Callable[[str, int, int], Sequence[int] | None], segment: str, start: int,
          end: int) -> Counts:
    """Exact counts of `segment` over [start, end) (whole minutes): the sum of the covering
    buckets read through `get(segment, resolution, bucket_start)`; a missing bucket is zero."""
    acc = zero()
    for res, bstart in cover(start, end):
        value = get(segment, res, bstart)
        if value is not None:
            acc = merge(acc, value)
    return acc


def window_counts(get: Callable[[str], Any], partition: int, segment: str, start: int,
                  end: int) -> Counts:
    """`query` over the worker's table for partition `partition`.

    Stored bucket values there are the 8 counters followed by the last applied source
    offset (the crash-safety stamp), which is dropped here.
    """
    def read(seg: str, res: int, bstart: int) -> Sequence[int] | None:
        value = get(keys.bucket_key(partition, seg, res, bstart))
        return None if value is None else value[:WIDTH]

    return query(read, segment, start, end)
