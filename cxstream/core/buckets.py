"""Bucket bookkeeping: which buckets a response counts in, how a window sums them, and how
the worker stores them.

Writing: a response adds to its three buckets (minute, hour, UTC day) in each of its
segments. Reading: a window [start, end) is the sum of the aligned buckets `cover` returns.

Stored layout: one state entry per partition, resolution and bucket start
(`keys.bucket_key`), holding every segment's counts, ``{"o": offset, "s": {segment: [8
counters]}}``, where `o` is the last source offset applied to it (the crash-safety stamp, see
`cxstream.core.step`). Why not one entry per segment: a response then wrote 18 entries (three
buckets in each of ~6 segments), each a changelog record, a store write and an index entry;
now it writes three, shared with the batch's other responses of the same minute, hour and
day, and the worker keeps far fewer entries. A response's segments all land in
the same three entries at once, so one stamp per entry is as exact as one per segment.

Size: an entry must fit in one changelog record (the topic's `max.message.bytes`), and holds
every segment of its partition and bucket, so `fits` bounds it. It measures an entry by the
set of its segments, each taken with the widest counts it could ever hold, not by its bytes
now: segments are only ever added to an entry, so that measure only grows, and whether a
response fits is then decided the same way when a replay after a crash finds the entry
already holding later responses (`cxstream.core.step`).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence, TypeAlias

import orjson

from cxstream.core import keys
from cxstream.core.model import SurveyResponse
from cxstream.core.scoring import WIDTH, Counts, Increment, merge, plus, zero
from cxstream.core.windows import bucket_keys_for, cover

__all__ = ["BucketKey", "add_response", "fits", "increments", "query", "segment_bytes",
           "stored_counts", "window_counts_all"]

#: Bytes of one segment's counts at their widest: 8 counters of up to 20 digits, in [].
COUNTS_MAX = 2 + 8 * 20 + 7
#: Bytes of one segment of an entry at the widest the decoder lets it be: the quoted key
#: (a dimension of up to 64 ASCII characters, a colon, a value of up to 128 characters of
#: up to 6 bytes each once escaped), a colon, the counts and a comma.
SEGMENT_MAX = 2 + 64 + 1 + 128 * 6 + 1 + COUNTS_MAX + 1
#: Bytes of an entry besides its segments: {"o":<offset>,"s":{}}.
ENTRY_OVERHEAD = 40

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


def add_response(stored: Any, offset: int, segments: Sequence[str],
                 inc: Increment, fresh: Counts) -> dict[str, Any] | None:
    """The bucket entry after adding one response (at source `offset`, increment `inc`) to
    each of `segments`; None when `stored` already holds that offset (applied before a
    crash). `fresh` is `inc` applied to zero counts. `stored` is what the store holds
    (a bucket entry or None), typed Any because it is checked here: anything else is a
    ValueError, never a guess.

    Never mutates `stored` (the old entry may still be in flight to the changelog): the new
    entry shares the untouched segments' counts with it, and new segments share `fresh`, so
    stored counts lists are never mutated in place by anyone."""
    if stored is None:
        return {"o": offset, "s": dict.fromkeys(segments, fresh)}
    counts = stored_counts(stored)
    if stored["o"] >= offset:
        return None
    counts = counts.copy()
    for segment in segments:
        cur = counts.get(segment)
        if cur is None:
            counts[segment] = fresh
            continue
        if len(cur) != WIDTH:
            plus(cur, inc)  # raises: a broken bucket is an error, not a guess
        new = cur.copy()  # `plus` inlined: this runs ~18 times per response
        for position, amount in inc:
            new[position] += amount
        counts[segment] = new
    return {"o": offset, "s": counts}


def segment_bytes(segment: str) -> int:
    """Bytes `segment` takes in a stored entry at most: its quoted JSON key, a colon, its
    counts at their widest (`COUNTS_MAX`) and a comma."""
    return len(orjson.dumps(segment)) + 1 + COUNTS_MAX + 1


def fits(stored: Any, segments: Sequence[str], bound: int) -> bool:
    """Whether the bucket entry `stored` (None: none yet) stays within `bound` bytes once a
    response counted in `segments` is added: True when the response adds no segment to it
    (counts grow, the measure does not), else whether its segments and the new ones, each
    at its widest (`segment_bytes`), and `ENTRY_OVERHEAD` add up to at most `bound`.

    Guarantee: an entry kept within `bound` this way encodes to at most `bound` bytes; and
    the answer is the same for any `stored` holding more segments than this one (later
    responses) as long as the response adds one: the measure only grows. Cheap for an entry
    that is far from the bound (its number of segments, `SEGMENT_MAX` each, is checked
    first); only an entry near it is measured segment by segment."""
    counts: dict[str, Counts] = {} if stored is None else stored_counts(stored)
    new = 0
    for segment in segments:
        if segment not in counts:
            new += 1
    if not new:
        return True
    if (len(counts) + new) * SEGMENT_MAX + ENTRY_OVERHEAD <= bound:
        return True
    size = ENTRY_OVERHEAD
    for segment in counts:
        size += segment_bytes(segment)
    for segment in segments:
        if segment not in counts:
            size += segment_bytes(segment)
    return size <= bound


def stored_counts(entry: Any) -> dict[str, Counts]:
    """Segment → counts of a stored bucket entry; ValueError for anything else (a bucket of
    an earlier layout is an error, never read as zero)."""
    if (type(entry) is not dict or type(entry.get("o")) is not int
            or type(entry.get("s")) is not dict):
        raise ValueError("not a bucket entry of this release "
                         "(expected {\"o\": offset, \"s\": {segment: counts}})")
    return entry["s"]


def window_counts_all(get: Callable[[str], Any], partition: int, start: int, end: int
                      ) -> dict[str, Counts]:
    """Every segment's counts over [start, end) in partition `partition`, each covering
    entry read once (a scrape reads all segments); segments without data are absent."""
    acc: dict[str, Counts] = {}
    for res, bstart in cover(start, end):
        entry = get(keys.bucket_key(partition, res, bstart))
        if entry is None:
            continue
        for segment, counts in stored_counts(entry).items():
            total = acc.get(segment)
            acc[segment] = merge(zero() if total is None else total, counts)
    return acc
