"""Score queries: gather per-partition partial counts from their owners and sum them.

Why scatter-gather: segment counters are kept per input partition, next to the customer
state (no repartition hop, and one ordered changelog per partition keeps replays exact).
Counts are additive integers, so summing the partials of every partition is exact.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from collections.abc import Callable, Collection, Iterable
from typing import Any

import aiohttp
import faust

from cxstream.worker.processor import Processor
from cxstream.api.auth import auth_headers
from cxstream.api.peers import peer_refusal
from cxstream.core import keys
from cxstream.core.buckets import window_counts_all
from cxstream.core.programscores import select
from cxstream.core.scoring import merge, zero


class QueryError(Exception):
    """A query that cannot be answered; carries the HTTP status and a JSON error code."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.extra}


@dataclass(frozen=True, slots=True)
class Partial:
    """Counts of some partitions: stored key → 8 counters (only keys with data in retention,
    so a segment absent from every partial is unknown), and each partition's stream time.
    The keys are segments and their program keys (`segments.program_key`), which travel
    like any key: a program's scores are computed once every partial is summed."""

    partitions: list[int]
    counts: dict[str, list[int]]
    stream_time: dict[int, int | None]


#: What a partition's buckets are read with: (partition, its store lookup, its known segments).
Reader = tuple[int, Callable[[str], Any], Collection[str]]


def readers(processor: Processor, partitions: Iterable[int]) -> list[Reader]:
    """One `Reader` per partition, in partition order, for reading many segments."""
    return [(p, processor.stored(p), processor.index(p).segments) for p in sorted(partitions)]


def partition_counts(reader: Reader, start: int, end: int) -> dict[str, list[int]]:
    """Counts over [start, end) of every segment the partition of `reader` knows (one in
    retention without data in this window counts zero), each bucket entry read once."""
    p, get, known = reader
    found = window_counts_all(get, p, start, end)
    return {segment: found.get(segment) or zero() for segment in known}


def add_counts(total: dict[str, list[int]], part: dict[str, list[int]]) -> None:
    """Add one partition's `partition_counts` to `total`, segment by segment."""
    for segment, counts in part.items():
        cur = total.get(segment)
        total[segment] = counts if cur is None else merge(cur, counts)


def local_partial(processor: Processor, partitions: Iterable[int], segments: list[str] | None,
                  start: int, end: int) -> Partial:
    """Sum the buckets covering [start, end) for `segments` (None: every known segment),
    each with its program keys (`programscores.select`)."""
    rs = readers(processor, partitions)
    stream_time: dict[int, int | None] = {}
    total: dict[str, list[int]] = {}
    for reader in rs:
        p, get, _ = reader
        st = get(keys.stream_time_key(p))
        stream_time[p] = None if st is None else st["t"]
        add_counts(total, partition_counts(reader, start, end))
    return Partial([p for p, _, _ in rs], select(total, segments), stream_time)


def partial_to_json(partial: Partial) -> dict[str, Any]:
    return {"partitions": partial.partitions, "counts": partial.counts,
            "stream_time": {str(p): t for p, t in partial.stream_time.items()}}


def partial_from_json(doc: dict[str, Any]) -> Partial:
    return Partial(list(doc["partitions"]), dict(doc["counts"]),
                   {int(p): t for p, t in doc["stream_time"].items()})


def owners(app: faust.App, processor: Processor) -> dict[str, list[int]]:
    """URL of each worker → the state partitions it owns (from the group's assignment)."""
    topic = processor.state.changelog_topic.get_topic_name()
    out: dict[str, list[int]] = {}
    for url, assignment in app.assignor.table_metadata(topic).items():
        parts = assignment.get(topic, [])
        if parts:
            out[str(url).rstrip("/")] = sorted(parts)
    return out


async def gather(app: faust.App, processor: Processor, segments: list[str] | None,
                 start: int, end: int, *, timeout_s: float = 10.0,
                 token: str | None = None) -> Partial:
    """Partials of every partition, local ones read here, remote ones asked of their owner
    with the peer `token` (`auth.resolve_peer_token`).

    Raises QueryError: 503 while some partition has no owner or when a remote owner must be
    asked but this worker has no peer token; 502 when an owner's URL is not a trusted peer
    (`peers.peer_refusal`: outside ``CXSTREAM_PEER_NETWORKS``) or it does not answer."""
    me = str(app.conf.canonical_url).rstrip("/")
    dist = owners(app, processor)
    covered = {p for parts in dist.values() for p in parts}
    expected = set(range(processor.settings.partitions))
    if not dist or not expected <= covered:
        raise QueryError(503, "not_ready",
                         "some partitions have no owner yet (the group is rebalancing); retry shortly",
                         unowned=sorted(expected - covered))
    jobs: list[Any] = []
    for url, parts in dist.items():
        if url == me:
            jobs.append(asyncio.sleep(0, local_partial(processor, parts, segments, start, end)))
            continue
        if token is None:
            raise QueryError(503, "peer_token_required",
                             "this query needs other workers' partitions: set CXSTREAM_PEER_TOKEN "
                             "(or CXSTREAM_API_TOKEN), the same on every worker of the group")
        refused = await peer_refusal(url, processor.settings.peer_networks)
        if refused:
            raise QueryError(502, "peer_refused",
                             f"worker {url} is not a trusted peer ({refused}): check that "
                             "worker's CXSTREAM_WEB_HOST and CXSTREAM_PEER_NETWORKS")
        jobs.append(_remote(url, parts, segments, start, end, timeout_s, token))
    merged_counts: dict[str, list[int]] = {}
    merged_st: dict[int, int | None] = {}
    for part in await asyncio.gather(*jobs):
        merged_st.update(part.stream_time)
        for seg, c in part.counts.items():
            merged_counts[seg] = merge(merged_counts.get(seg) or list(zero()), c)
    return Partial(sorted(merged_st), merged_counts, merged_st)


async def _remote(url: str, parts: list[int], segments: list[str] | None, start: int, end: int,
                  timeout_s: float, token: str | None = None) -> Partial:
    params = {"partitions": ",".join(map(str, parts)), "start": str(start), "end": str(end)}
    if segments is not None:
        params["segments"] = "\n".join(segments)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as s:
            async with s.get(f"{url}/_cx/partials", params=params,
                             headers=auth_headers(token), allow_redirects=False) as resp:
                if resp.status != 200:
                    hint = (" (do the workers share one CXSTREAM_PEER_TOKEN, or CXSTREAM_API_TOKEN?)"
                            if resp.status == 401 else "")
                    raise QueryError(502, "peer_error",
                                     f"worker {url} answered {resp.status} for its partitions{hint}")
                return partial_from_json(await resp.json())
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise QueryError(502, "peer_unreachable",
                         f"worker {url} did not answer ({type(exc).__name__}); retry shortly") from exc
