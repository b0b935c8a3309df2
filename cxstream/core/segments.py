"""Which segments a response counts in, with a cap on distinct values per dimension.

A response counts in `all`, in `<dimension>:<value>` for each entry of its `segment`, and
in `touchpoint:<t>` / `channel:<c>`. The cap keeps a typo-filled field from exploding memory
and metric cardinality: a dimension holds at most `cap` value *slots* per partition (kept by
the caller); a value without a slot when they are all taken counts in `<dimension>:other`,
and the fold is reported.

Slots age out, so that junk (or a value retired upstream) cannot hold one for ever: each
slot remembers the last UTC day a response counted under its value, and is *live* while that
day is still in the partition's horizon (largest window + grace behind stream time) — exactly
while a day bucket of the partition can still show the value. A value with a live slot counts
as itself; a new value takes a slot when fewer than `cap` are live. Dead slots are reclaimed
only when a new value needs the room (`SegmentResult.prune`), which is what keeps the rule
exact across a crash and its replay (`cxstream.core.caps`).

The value `other` itself is reserved: it always counts in `<dimension>:other` without
taking a slot under the cap (it would land in that key either way) and is not reported as a
fold. Values are used verbatim (case-sensitive); a key splits on its first colon only.

Dimensions are bounded too, so that a stream of made-up dimension names cannot grow a bucket
entry (every segment of a partition's minute, hour or day lives in one entry) or the metric
series without end: per partition, the first `max_dims` distinct dimensions (kept by the
caller) count; a response's further dimensions are left out of it (it still counts in `all`
and its other segments), and reported. A response that carries more than
`max_response_dims` counted dimensions counts in `all` only, also reported. Both are
first-come rules on a set that only grows (dimensions are few and named by the schema
owner, not by customers), which keeps them exact across a crash and its replay.
"""

from __future__ import annotations

import re
from typing import Collection, Mapping

from cxstream.core.model import Record, SurveyResponse

__all__ = ["ALL", "OTHER", "SegmentResult", "dimension_values", "parse_segment_key",
           "program_key", "segment_keys", "split_program_key"]

ALL = "all"
OTHER = "other"
#: Same rule as the input schemas, so a query can name every dimension the decoder accepts.
_DIMENSION = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")
_VALUE_MAX = 128


class SegmentResult(Record):
    """Where one response counts, and what the caller must persist about the caps."""

    __slots__ = ("keys", "admit", "folded", "admit_dims", "dropped", "too_many", "seen",
                 "prune")

    def __init__(self, keys: tuple[str, ...], admit: tuple[tuple[str, str], ...],
                 folded: tuple[str, ...], admit_dims: tuple[str, ...] = (),
                 dropped: tuple[str, ...] = (), too_many: int = 0,
                 seen: tuple[tuple[str, str], ...] = (), prune: tuple[str, ...] = ()) -> None:
        self.keys = keys  # starts with "all"; then sorted by dimension; no duplicates
        self.admit = admit  # (dimension, value) newly given a slot under the cap
        self.folded = folded  # dimensions whose value went to "<dimension>:other"
        self.admit_dims = admit_dims  # dimensions newly admitted under `max_dims`
        self.dropped = dropped  # dimensions left out: `max_dims` others count already
        #: The number of counted dimensions when over `max_response_dims` (the response
        #: then counts in `all` only), else 0.
        self.too_many = too_many
        #: (dimension, value) whose live slot must now remember a later day (`day`).
        self.seen = seen
        #: Dimensions whose dead slots must be dropped before `admit` is written: the new
        #: value needs their room, or had a dead slot of its own.
        self.prune = prune

    def _fields(self) -> tuple[object, ...]:
        return (self.keys, self.admit, self.folded, self.admit_dims, self.dropped,
                self.too_many, self.seen, self.prune)


def dimension_values(r: SurveyResponse) -> dict[str, str]:
    """Dimension → value of a response; explicit touchpoint/channel fields win over
    same-named entries of `segment` (one value per dimension, so no double counting)."""
    values = dict(r.segment)
    if r.touchpoint is not None:
        values["touchpoint"] = r.touchpoint
    if r.channel is not None:
        values["channel"] = r.channel
    return values


#: `live_from` when no slot is old enough to die (the default: slots never age out).
EVER = -(2**62)


def segment_keys(r: SurveyResponse, *, dimensions: frozenset[str] | None,
                 admitted: Mapping[str, Mapping[str, int]], cap: int,
                 dims: Collection[str] | None = None, max_dims: int = 0,
                 max_response_dims: int = 0, day: int = 0,
                 live_from: int = EVER) -> SegmentResult:
    """The segment keys of `r` (`dimensions` None: every dimension present counts).

    `admitted` is the caller's per-partition record of value slots per dimension: value →
    the last UTC day (epoch days) a response counted under it. A slot is live when that day
    is `live_from` or later; live values keep counting verbatim even if the cap was lowered
    since. `day` is the UTC day of `r`. `dims`, when not None, is the
    record of dimensions already admitted in the partition, under `max_dims` (None: every
    dimension counts, as with a configured `dimensions` list, which bounds them itself).
    `max_response_dims` > 0 bounds the counted dimensions of one response. The result's
    `admit`, `seen`, `prune` and `admit_dims` list what the caller must change in those
    records (`cxstream.core.caps.cap_writes`).

    The decision depends on live slots only: dead ones, reclaimed or not, change nothing.
    """
    if cap < 0:
        raise ValueError(f"the segment value cap must not be negative, got {cap}")
    values = dimension_values(r)
    if dimensions is None:
        names = sorted(values)  # the names are distinct: sorting them orders the items
    else:
        names = sorted([dim for dim in values if dim in dimensions])
    if 0 < max_response_dims < len(names):
        return SegmentResult((ALL,), (), (), (), (), len(names))
    keys = [ALL]
    admit: list[tuple[str, str]] = []
    seen: list[tuple[str, str]] = []
    prune: list[str] = []
    folded: list[str] = []
    admit_dims: list[str] = []
    dropped: list[str] = []
    for dim in names:
        if dims is not None and dim not in dims:
            if len(dims) + len(admit_dims) < max_dims:
                admit_dims.append(dim)
            else:
                dropped.append(dim)
                continue
        value = values[dim]
        if value != OTHER:
            slots = admitted.get(dim, _NONE)
            last = slots.get(value)
            if last is not None and last >= live_from:
                if day > last:
                    seen.append((dim, value))
            elif _live(slots, live_from) < cap:
                admit.append((dim, value))
                if last is not None or len(slots) >= cap:
                    prune.append(dim)  # a dead slot goes first: see `cxstream.core.caps`
            else:
                folded.append(dim)
                value = OTHER
        keys.append(f"{dim}:{value}")
    return SegmentResult(tuple(keys), tuple(admit), tuple(folded), tuple(admit_dims),
                         tuple(dropped), 0, tuple(seen), tuple(prune))


_NONE: dict[str, int] = {}


def _live(slots: Mapping[str, int], live_from: int) -> int:
    """How many of `slots` are live (last day at or after `live_from`)."""
    n = 0
    for last in slots.values():
        if last >= live_from:
            n += 1
    return n


def parse_segment_key(text: str) -> str:
    """Validate a segment key from a query and normalise it: `all` (any case), or
    `<dimension>:<value>` with the dimension lower-cased (dimensions are lower case by
    schema) and the value kept verbatim. Raises ValueError saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"segment must be text, got {type(text).__name__}")
    shown = text[:80]
    if text.isascii() and text.lower() == ALL:
        return ALL
    dim, sep, value = text.partition(":")
    if not sep:
        raise ValueError("segment must be 'all' or '<dimension>:<value>' (e.g. plan:pro), "
                         f"got {shown!r}")
    # ASCII first: str.lower() maps e.g. the Kelvin sign to "k", which is no dimension name.
    dim = dim.lower() if dim.isascii() else dim
    if not _DIMENSION.match(dim):
        raise ValueError("segment dimension must start with a letter and contain only letters, "
                         f"digits and '_' (at most 64), got {dim[:80]!r}")
    if not value:
        raise ValueError(f"segment {shown!r} has an empty value (e.g. plan:pro)")
    if len(value) > _VALUE_MAX:
        raise ValueError(f"segment value is longer than {_VALUE_MAX} characters")
    return f"{dim}:{value}"


def program_key(program: str, segment: str) -> str:
    """The key under which a program's own answers count in `segment`: `<program>/<segment>`
    (a program id has neither `/` nor `:`; a dimension name has no `/`, so no segment key
    of its own is ever of this form: see `split_program_key`)."""
    return f"{program}/{segment}"


def split_program_key(key: str) -> tuple[str | None, str]:
    """(program, segment) of a stored counts key: the program None for a segment's own key
    (`all`, `<dimension>:<value>`, the sum of every program's answers), else the program of
    a `program_key`. A `/` counts only before the first `:` (a value may hold one)."""
    slash = key.find("/")
    if slash < 0:
        return None, key
    colon = key.find(":")
    if 0 <= colon < slash:
        return None, key
    return key[:slash], key[slash + 1:]
