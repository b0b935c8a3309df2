"""The stored value slots of a dimension (`keys.cap_key`), and the writes that keep them.

An entry maps each value holding a slot to the last UTC day (epoch days) a response counted
under it: `{"pro": 20431, "team": 20433}`. Which slot is live, and who gets one, is decided
in `cxstream.core.segments`; this module reads and writes the entries.

Why a dead slot is dropped only when a new value needs its room, and why that drop *seals*
the batch (`batch.PendingWrites.seal`): a batch's writes are coalesced per key and land in
the changelog kind by kind, caps first. A crash inside them leaves a state whose cap
entries are ahead of its other entries, and the replay plans the batch's unfinished
messages against it. Within one sealed part, entries only grow (a slot is added, or
remembers a later day), so a message replayed against them decides as it did: a value it
found live is still live, a value it admitted is there, a dimension it found full is still
full (any admission after it would have had to drop a dead slot first, which starts a new
part). Dropping a slot is the one change that is not growth; the seal puts it after every
write of the messages before it, so no replay of those can see it.

Entries of the earlier layout (a sorted list of values, without days) are read as slots
last seen at the start of the horizon, and rewritten in this layout the first time a
response of their dimension is planned: values in use are then dated by their next
response, and the others hold their slot for about a day of stream time.
"""

from __future__ import annotations

from typing import Any, Mapping

from cxstream.core import keys
from cxstream.core.errors import ErrorCode, Rejection
from cxstream.core.segments import SegmentResult

__all__ = ["CAP_VALUE_MAX", "DIMENSION_ENTRY_MAX", "cap_writes", "notices", "slots_of"]

#: Bytes of one slot in a value cap entry (a JSON object) at most: the value quoted, up to
#: 128 characters of up to 6 bytes; a colon; its day (at most 7 characters, sign included,
#: for years 1 to 9999) and a comma.
CAP_VALUE_MAX = 2 + 128 * 6 + 1 + 7 + 1
#: Bytes of one dimension in the admitted dimensions entry at most: its quoted name (up to
#: 64 ASCII characters), a colon, an offset and a comma.
DIMENSION_ENTRY_MAX = 2 + 64 + 1 + 20 + 1


def slots_of(stored: Any, live_from: int) -> tuple[Mapping[str, int], bool]:
    """The slots of a stored cap entry (None: no slot yet), and whether the entry is of the
    earlier layout (a list of values), whose values are then read as last seen on day
    `live_from` (live, the oldest a live slot can be) and must be rewritten."""
    if stored is None:
        return _EMPTY, False
    if isinstance(stored, dict):
        return stored, False
    if isinstance(stored, list):
        return {str(value): live_from for value in stored}, True
    raise ValueError(f"a value cap entry must be an object, found {type(stored).__name__}")


_EMPTY: dict[str, int] = {}


def cap_writes(partition: int, seg: SegmentResult, slots: Mapping[str, Mapping[str, int]],
               old_layout: list[str], day: int, live_from: int) -> list[tuple[str, Any]]:
    """The cap entries to write for one response: those of the dimensions `seg` gives a
    slot (`admit`), a later day (`seen`) or reclaims dead slots of (`prune`), and those of
    `old_layout` (dimensions read from an entry of the earlier layout), in dimension order.
    `slots`: the entries as `slots_of` read them; `day`: the response's UTC day. New
    dictionaries: the stored ones are shared with the store, never mutated."""
    changed: dict[str, dict[str, int]] = {}
    for dim in old_layout:
        changed[dim] = dict(slots[dim])
    for dim in seg.prune:
        before = changed.get(dim)
        source = before if before is not None else slots.get(dim, _EMPTY)
        changed[dim] = {v: d for v, d in source.items() if d >= live_from}
    for dim, value in (*seg.admit, *seg.seen):
        entry = changed.get(dim)
        if entry is None:
            entry = changed[dim] = dict(slots.get(dim, _EMPTY))
        last = entry.get(value)
        entry[value] = day if last is None or day > last else last
    return [(keys.cap_key(partition, dim), changed[dim]) for dim in sorted(changed)]


def notices(seg: SegmentResult, value_cap: int, max_dims: int,
            max_response_dims: int) -> tuple[Rejection, ...]:
    """The informational dead letters of a response that did not count in all of its
    segments, under the caps given (`CXSTREAM_SEGMENT_VALUE_CAP`, `CXSTREAM_MAX_DIMENSIONS`,
    `CXSTREAM_MAX_RESPONSE_DIMENSIONS`). The reasons name dimensions only when they are
    admitted ones (bounded in number); never a value."""
    out: list[Rejection] = []
    if seg.too_many:
        out.append(Rejection(ErrorCode.TOO_MANY_DIMENSIONS, (
            f"the response has {seg.too_many} segment dimensions (touchpoint and channel "
            f"included), more than CXSTREAM_MAX_RESPONSE_DIMENSIONS={max_response_dims}: "
            "it counted in 'all' only. Send fewer dimensions per response, list the ones "
            "that matter in CXSTREAM_SEGMENT_DIMENSIONS, or raise the setting")))
    if seg.dropped:
        out.append(Rejection(ErrorCode.TOO_MANY_DIMENSIONS, (
            f"{len(seg.dropped)} of the response's segment dimensions did not count: the "
            f"partition already counts CXSTREAM_MAX_DIMENSIONS={max_dims} other "
            "dimensions. The response counted in 'all' and its other segments. List the "
            "dimensions that matter in CXSTREAM_SEGMENT_DIMENSIONS, or raise "
            "CXSTREAM_MAX_DIMENSIONS")))
    if seg.folded:
        out.append(Rejection(ErrorCode.SEGMENT_VALUE_CAPPED, (
            f"the value of dimension(s) {', '.join(seg.folded)} counted as "
            f"'<dimension>:other': the partition already counts "
            f"CXSTREAM_SEGMENT_VALUE_CAP={value_cap} other values of it, each seen within the "
            "horizon (largest window + grace). The response counted in 'all' and its other "
            "segments. Raise CXSTREAM_SEGMENT_VALUE_CAP if these values matter")))
    return tuple(out)
