"""Which buckets exist, and which fall out of retention as stream time moves on.

Kept in memory per owned partition (rebuilt from the table after a rebalance), so expiry is
a heap pop rather than a scan of the store.
"""

from __future__ import annotations

import heapq
import sys
from collections import Counter
from typing import Any

from cxstream.core import keys
from cxstream.core.buckets import stored_counts
from cxstream.core.windows import DAY


class ExpiryIndex:
    """Bucket keys of one partition grouped by their end; also the segments with data.

    Bucket ends are whole minutes and many buckets end at the same instant, so the heap
    holds each end once and a group of keys under it.

    Segments: a response counts in its minute, hour and day bucket alike, and the day bucket
    ends last, so the segments with any bucket in retention are exactly those of the live day
    entries. Only those (a few dozen per partition) are tracked, each segment counted once
    per day entry holding it.
    """

    __slots__ = ("_ends", "_heap", "_live", "_days", "segments")

    def __init__(self) -> None:
        self._ends: dict[int, list[str]] = {}  # end -> keys ending then
        self._heap: list[int] = []  # the distinct ends in `_ends`
        self._live: set[str] = set()
        self._days: dict[str, set[str]] = {}  # day entry key -> its segments
        self.segments: Counter[str] = Counter()

    def __contains__(self, key: str) -> bool:
        return key in self._live

    def __len__(self) -> int:
        return len(self._live)

    def add_bucket(self, key: str, entry: Any) -> None:
        """Record the stored bucket entry `entry` under `key` (`keys.bucket_key`): new, or
        rewritten with more segments."""
        if key not in self._live:
            _, res, start = keys.parse_bucket_key(key)
            self._live.add(key)
            end = start + res
            group = self._ends.get(end)
            if group is None:
                self._ends[end] = [key]
                heapq.heappush(self._heap, end)
            else:
                group.append(key)
            if res == DAY:
                self._days[key] = set()
        known = self._days.get(key)
        if known is not None:
            counts = stored_counts(entry)
            if len(counts) != len(known):  # entries only ever gain segments
                for segment in counts.keys() - known:
                    # One string per segment, not one per entry.
                    segment = sys.intern(segment)
                    known.add(segment)
                    self.segments[segment] += 1

    def pop_expired(self, cutoff_ms: int) -> list[str]:
        """Remove and return the keys of buckets that end at or before `cutoff_ms`, earliest
        end first (keys with the same end in the order they were added)."""
        out: list[str] = []
        heap, live, segments = self._heap, self._live, self.segments
        while heap and heap[0] <= cutoff_ms:
            for key in self._ends.pop(heapq.heappop(heap)):
                live.discard(key)
                for segment in self._days.pop(key, ()):
                    segments[segment] -= 1
                    if not segments[segment]:
                        del segments[segment]
                out.append(key)
        return out
