"""Which segments a response counts in, with a cap on distinct values per dimension.

A response counts in `all`, in `<dimension>:<value>` for each entry of its `segment`, and
in `touchpoint:<t>` / `channel:<c>`. The cap keeps a typo-filled field from exploding memory
and metric cardinality: once a dimension has `cap` admitted values (per partition, kept by
the caller), further values count in `<dimension>:other`, and the fold is reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Set

from cxstream.core.model import SurveyResponse

ALL = "all"
OTHER = "other"
_DIMENSION = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")


@dataclass(frozen=True, slots=True)
class SegmentResult:
    keys: tuple[str, ...]  # starts with "all"; no duplicates
    admit: tuple[tuple[str, str], ...]  # (dimension, value) newly admitted under the cap
    folded: tuple[str, ...]  # dimensions whose value went to "<dimension>:other"


def dimension_values(r: SurveyResponse) -> dict[str, str]:
    """Dimension → value of a response; explicit touchpoint/channel fields win."""
    values = dict(r.segment)
    if r.touchpoint is not None:
        values["touchpoint"] = r.touchpoint
    if r.channel is not None:
        values["channel"] = r.channel
    return values


def segment_keys(r: SurveyResponse, *, dimensions: frozenset[str] | None,
                 admitted: Mapping[str, Set[str]], cap: int) -> SegmentResult:
    keys = [ALL]
    admit: list[tuple[str, str]] = []
    folded: list[str] = []
    for dim, value in sorted(dimension_values(r).items()):
        if dimensions is not None and dim not in dimensions:
            continue
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
    """Validate a segment key from a query (`all` or `dimension:value`)."""
    if text == ALL:
        return text
    dim, sep, value = text.partition(":")
    if not sep or not _DIMENSION.match(dim) or not 1 <= len(value) <= 128:
        raise ValueError(f"segment must be 'all' or '<dimension>:<value>' (e.g. plan:pro), got {text[:80]!r}")
    return text
