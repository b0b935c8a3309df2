"""Which buckets exist, and which fall out of retention as stream time moves on.

Kept in memory per owned partition (rebuilt from the table after a rebalance), so expiry is
a heap pop rather than a scan of the store.
"""

from __future__ import annotations

import heapq
import sys
from collections import Counter


class ExpiryIndex:
    """Bucket keys of one partition ordered by their end; also counts buckets per segment."""

    __slots__ = ("_heap", "_live", "segments")

    def __init__(self) -> None:
        self._heap: list[tuple[int, str, str]] = []
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
            heapq.heappush(self._heap, (end_ms, key, segment))

    def pop_expired(self, cutoff_ms: int) -> list[str]:
        """Remove and return the keys of buckets that end at or before `cutoff_ms`."""
        out: list[str] = []
        heap = self._heap
        while heap and heap[0][0] <= cutoff_ms:
            _, key, segment = heapq.heappop(heap)
            self._live.discard(key)
            self.segments[segment] -= 1
            if not self.segments[segment]:
                del self.segments[segment]
            out.append(key)
        return out
