"""Which buckets exist, and which fall out of retention as stream time moves on.

Kept in memory per owned partition (rebuilt from the table after a rebalance), so expiry is
a heap pop rather than a scan of the store.
"""

from __future__ import annotations

import heapq
import sys
from collections import Counter

from cxstream.core import keys


class ExpiryIndex:
    """Bucket keys of one partition grouped by their end; also counts buckets per segment.

    Bucket ends are whole minutes, and a response's buckets in all its segments end at the
    same few instants, so the heap holds each end once and a group of keys under it. With
    30 d windows a partition keeps ~100 000 buckets: a heap entry per bucket made each
    response's expiry cost grow with the window (a deeper heap, tuple comparisons), where
    one entry per minute keeps it a few integer comparisons.
    """

    __slots__ = ("_ends", "_heap", "_live", "segments")

    def __init__(self) -> None:
        self._ends: dict[int, list[tuple[str, str]]] = {}  # end -> [(key, segment)]
        self._heap: list[int] = []  # the distinct ends in `_ends`
        self._live: set[str] = set()
        self.segments: Counter[str] = Counter()

    def __contains__(self, key: str) -> bool:
        return key in self._live

    def __len__(self) -> int:
        return len(self._live)

    def add(self, key: str, segment: str, end_ms: int) -> None:
        if key not in self._live:
            # A partition holds hundreds of thousands of buckets but few segments: one string
            # per segment, not one per bucket (tens of MB at 100 000 customers).
            segment = sys.intern(segment)
            self._live.add(key)
            self.segments[segment] += 1
            group = self._ends.get(end_ms)
            if group is None:
                self._ends[end_ms] = [(key, segment)]
                heapq.heappush(self._heap, end_ms)
            else:
                group.append((key, segment))

    def add_bucket(self, key: str) -> None:
        """`add` for a stored bucket key (`keys.bucket_key`), which names its segment and,
        with its resolution and start, its end."""
        if key not in self._live:
            _, res, start, segment = keys.parse_bucket_key(key)
            self.add(key, segment, start + res)

    def pop_expired(self, cutoff_ms: int) -> list[str]:
        """Remove and return the keys of buckets that end at or before `cutoff_ms`, earliest
        end first (keys with the same end in the order they were added)."""
        out: list[str] = []
        heap, live, segments = self._heap, self._live, self.segments
        while heap and heap[0] <= cutoff_ms:
            for key, segment in self._ends.pop(heapq.heappop(heap)):
                live.discard(key)
                segments[segment] -= 1
                if not segments[segment]:
                    del segments[segment]
                out.append(key)
        return out
