"""Which segments a response counts in, with a cap on distinct values per dimension.

A response counts in `all`, in `<dimension>:<value>` for each entry of its `segment`, and
in `touchpoint:<t>` / `channel:<c>`. The cap keeps a typo-filled field from exploding memory
and metric cardinality: once a dimension has `cap` admitted values (per partition, kept by
the caller), further values count in `<dimension>:other`, and the fold is reported.

The value `other` itself is reserved: it always counts in `<dimension>:other` without
taking a slot under the cap (it would land in that key either way) and is not reported as a
fold. Values are used verbatim (case-sensitive); a key splits on its first colon only.
"""

from __future__ import annotations

import re
from typing import Collection, Mapping

from cxstream.core.model import Record, SurveyResponse

__all__ = ["ALL", "OTHER", "SegmentResult", "dimension_values", "parse_segment_key",
           "segment_keys"]

ALL = "all"
OTHER = "other"
#: Same rule as the input schemas, so a query can name every dimension the decoder accepts.
_DIMENSION = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")
_VALUE_MAX = 128


class SegmentResult(Record):
    """Where one response counts, and what the caller must persist about the cap."""

    __slots__ = ("keys", "admit", "folded")

    def __init__(self, keys: tuple[str, ...], admit: tuple[tuple[str, str], ...],
                 folded: tuple[str, ...]) -> None:
        self.keys = keys  # starts with "all"; then sorted by dimension; no duplicates
        self.admit = admit  # (dimension, value) newly admitted under the cap
        self.folded = folded  # dimensions whose value went to "<dimension>:other"

    def _fields(self) -> tuple[object, ...]:
        return (self.keys, self.admit, self.folded)


def dimension_values(r: SurveyResponse) -> dict[str, str]:
    """Dimension → value of a response; explicit touchpoint/channel fields win over
    same-named entries of `segment` (one value per dimension, so no double counting)."""
    values = dict(r.segment)
    if r.touchpoint is not None:
        values["touchpoint"] = r.touchpoint
    if r.channel is not None:
        values["channel"] = r.channel
    return values


def segment_keys(r: SurveyResponse, *, dimensions: frozenset[str] | None,
                 admitted: Mapping[str, Collection[str]], cap: int) -> SegmentResult:
    """The segment keys of `r` (`dimensions` None: every dimension present counts).

    `admitted` is the caller's per-partition record of values already admitted per
    dimension (distinct values: a set, or the stored sorted list); values admitted earlier
    keep counting verbatim even if the cap was lowered since. The result's `admit` lists
    what the caller must add to that record.
    """
    if cap < 0:
        raise ValueError(f"the segment value cap must not be negative, got {cap}")
    keys = [ALL]
    admit: list[tuple[str, str]] = []
    folded: list[str] = []
    values = dimension_values(r)
    for dim in sorted(values):  # the names are distinct: sorting them orders the items
        if dimensions is not None and dim not in dimensions:
            continue
        value = values[dim]
        if value != OTHER:
            known = admitted.get(dim, ())
            if value not in known:
                if len(known) < cap:
                    admit.append((dim, value))
                else:
                    folded.append(dim)
                    value = OTHER
        keys.append(f"{dim}:{value}")
    return SegmentResult(tuple(keys), tuple(admit), tuple(folded))


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
