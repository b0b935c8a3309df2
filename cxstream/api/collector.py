"""Metrics read from the live worker at scrape time (a Prometheus custom Collector).

Per segment and window: the additive counts and the derived scores, computed exactly as the
scores API computes them (`query.partition_counts` over the same buckets, the metric-level
view of `programscores.metric_view` for the scores, `as_of` = now floored to the whole
minute, the API's default), but **only from the input partitions this worker owns as
active**. So after a rebalance the series of revoked partitions disappear at the next
scrape: nothing is stale, and no partition is counted by two workers. Counts are additive
(`sum by (segment, window)` across workers is exact); the derived gauges are per worker
(exact with one worker; aggregate with the recording rules). The series are per segment and
metric, summed over the survey programs, with no `program` label (the scores API gives each
program's own scores); the program keys stored beside the segments are no segments.

Also consumer lag per owned input partition, recovery progress and the number of owned
partitions. While the worker rebalances or restores state, the segment and lag series are
left out (their inputs are incomplete then; the recovery gauges say why), and the bucket
index of a partition is never built from a half-restored table.

Everything runs on the event loop thread that also processes messages, so the table and
consumer bookkeeping read here are never mid-update. The `/metrics` view computes the segment
gauges first (`WorkerCollector.prepare`), a few milliseconds at a time: over a large state they
take tens of milliseconds, which in one piece held back every batch, and so every alert,
for as long at each scrape. Each (window, partition) is read in one piece, and every gauge of a
segment derives from the same summed counts, so its counts and scores agree; a rebalance
meanwhile drops the segment series from that scrape, as while not ready.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from cxstream import metrics
from cxstream.core import keys
from cxstream.worker.processor import Processor
from cxstream.core.scoring import (
    CES_HIGH,
    CES_N,
    CES_SUM,
    CSAT_N,
    DETRACTORS,
    PASSIVES,
    PROMOTERS,
    merge,
    zero,
)
from cxstream.core.programscores import by_segment, combine, metric_view
from cxstream.core.segments import ALL
from cxstream.core.windows import Window, floor_minute
from cxstream.api.queries import add_counts, partition_counts, readers

log = logging.getLogger(__name__)
#: Longest the `/metrics` view computes segment gauges before letting batches run (seconds).
SLICE_S = 0.005

#: Scrape-time gauge → its value from (counts, summary); None leaves the series out.
_SEGMENT_VALUES: dict[str, Callable[[list[int], dict[str, Any]], float | None]] = {
    "cxstream_segment_nps_promoters": lambda c, s: s["nps"]["promoters"],
    "cxstream_segment_nps_passives": lambda c, s: s["nps"]["passives"],
    "cxstream_segment_nps_detractors": lambda c, s: s["nps"]["detractors"],
    "cxstream_segment_nps_responses": lambda c, s: s["nps"]["responses"],
    "cxstream_segment_csat_responses": lambda c, s: s["csat"]["responses"],
    "cxstream_segment_csat_satisfied": lambda c, s: s["csat"]["satisfied"],
    "cxstream_segment_ces_responses": lambda c, s: s["ces"]["responses"],
    "cxstream_segment_ces_effort_points": lambda c, s: c[CES_SUM],
    "cxstream_segment_ces_high_effort": lambda c, s: c[CES_HIGH],
    # Scores are None without responses: the series is omitted, never NaN.
    "cxstream_segment_nps": lambda c, s: s["nps"]["score"],
    "cxstream_segment_csat_percent": lambda c, s: s["csat"]["score"],
    "cxstream_segment_ces_effort_mean": lambda c, s: s["ces"]["mean"],
}


#: The segment label of the sum of the segments past `CXSTREAM_METRIC_SEGMENTS_MAX` (no
#: segment key is a plain word but `all`, so it is never a segment's own).
OTHER = "other"


def capped_segments(total: dict[str, list[int]], most: int) -> tuple[dict[str, list[int]], int]:
    """At most `most` segments of `total` (segment → counts), for one window: all of them
    when they are that few; else `all`, the `most` − 2 with the most responses (ties: by
    name) and `other`, the sum of the rest. Returns them and how many were summed.

    Why: every segment is a series of each segment gauge, and a partition may hold up to
    `CXSTREAM_MAX_DIMENSIONS` × `CXSTREAM_SEGMENT_VALUE_CAP` of them, more across the
    partitions of a worker; Prometheus slows down with every series. The sum keeps the
    counts additive (`sum by (window)` over the segment gauges is unchanged); its derived
    scores mix unrelated segments and only say how much is left out."""
    if len(total) <= most:
        return total, 0
    ranked = sorted((s for s in total if s != ALL), key=lambda s: (-_responses(total[s]), s))
    keep = max(most - 2, 0)
    out = {s: total[s] for s in ranked[:keep]}
    if ALL in total:
        out[ALL] = total[ALL]
    rest = zero()
    for s in ranked[keep:]:
        rest = merge(rest, total[s])
    out[OTHER] = rest
    return out, len(ranked) - keep


def _responses(counts: list[int]) -> int:
    return (counts[PROMOTERS] + counts[PASSIVES] + counts[DETRACTORS] + counts[CSAT_N]
            + counts[CES_N])


#: Segments summed into `other` per window (`capped_segments`).
_SUMMED = "cxstream_metric_segments_summed"
#: The families `segment_families` fills.
_FAMILIES = (*_SEGMENT_VALUES, _SUMMED)


def _family(name: str) -> GaugeMetricFamily:
    spec = metrics.SCRAPED_BY_NAME[name]
    return GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels))


def _segment_steps(processor: Processor, partitions: Iterable[int], windows: Iterable[Window],
                   as_of: int, fams: dict[str, GaugeMetricFamily]) -> Iterator[None]:
    """Add the per-segment samples to `fams`, one (window, partition) per step, segments in
    name order within each window. Segments only: the program keys stored beside them
    (`segments.program_key`) are no segment of their own; the scores are the API's
    metric-level view (`programscores.metric_view`: no CES mean across CES scales)."""
    rs = readers(processor, partitions)
    registry = processor.programs
    for window in windows:
        total: dict[str, list[int]] = {}
        for reader in rs:
            add_counts(total, partition_counts(reader, as_of - window.ms, as_of))
            yield
        groups = by_segment(total)
        shown, summed = capped_segments({s: g.total for s, g in groups.items()},
                                        processor.settings.metric_segments_max)
        if rs:
            fams[_SUMMED].add_metric([window.name], summed)
        for segment in sorted(shown):
            counts = shown[segment]
            group = groups[segment] if segment in groups else combine(
                g for s, g in groups.items() if s not in shown)  # `other`: the rest summed
            scores = metric_view(group, registry,
                                 min_responses=processor.settings.min_responses)
            for name, value_of in _SEGMENT_VALUES.items():
                value = value_of(counts, scores)
                if value is not None:
                    fams[name].add_metric([segment, window.name], value)


def segment_families(processor: Processor, partitions: Iterable[int],
                     windows: Iterable[Window], as_of: int) -> list[GaugeMetricFamily]:
    """The per-segment gauges over `partitions`, every window ending at `as_of` (ms), at
    most `CXSTREAM_METRIC_SEGMENTS_MAX` segments per window (`capped_segments`)."""
    fams = {name: _family(name) for name in _FAMILIES}
    for _ in _segment_steps(processor, partitions, windows, as_of, fams):
        pass
    return list(fams.values())


async def segment_families_sliced(processor: Processor, partitions: Iterable[int],
                                  windows: Iterable[Window], as_of: int,
                                  still_valid: Callable[[], bool]) -> list[GaugeMetricFamily] | None:
    """`segment_families`, letting the event loop run every `SLICE_S`; None if `still_valid()`
    turns false at one of those points (a rebalance began: the partitions may change hands)."""
    fams = {name: _family(name) for name in _FAMILIES}
    deadline = time.perf_counter() + SLICE_S
    for _ in _segment_steps(processor, partitions, windows, as_of, fams):
        if time.perf_counter() >= deadline:
            await asyncio.sleep(0)
            if not still_valid():
                return None
            deadline = time.perf_counter() + SLICE_S
    return list(fams.values())


_TRENDS = ("cxstream_segment_nps_change", "cxstream_segment_nps_change_significant")


def trend_families(processor: Processor, partitions: Iterable[int]) -> list[GaugeMetricFamily]:
    """The trend gauges of the segments whose report partitions this worker owns, as last
    decided there (`cxstream.core.targets.decide_trends`, kept in the status entry): each
    segment is exported by one worker only. At most `CXSTREAM_METRIC_SEGMENTS_MAX` segments
    per window, the largest changes first."""
    change, significant = _family(_TRENDS[0]), _family(_TRENDS[1])
    rows: dict[str, list[tuple[str, list[float]]]] = {}
    for p in partitions:
        status = processor.stored(p)(keys.target_status_key(p)) or {}
        for name, values in (status.get("trend") or {}).items():
            window, _, segment = name.partition("|")
            rows.setdefault(window, []).append((segment, values))
    most = processor.settings.metric_segments_max
    for window, found in sorted(rows.items()):
        found.sort(key=lambda row: (-abs(row[1][0]), row[0]))
        for segment, values in found[:most]:
            change.add_metric([segment, window], values[0])
            significant.add_metric([segment, window], values[3])
    return [change, significant]


def next_offset(consumer: Any, tp: Any) -> int:
    """The next offset of `tp` this worker will process: one past the highest processed
    (acknowledged) message, or the committed offset, whichever is higher; 0 when neither is
    known yet (a group that never committed reads from the start: auto_offset_reset=earliest).
    Faust keeps these per owned partition and drops them on revoke."""
    best = 0
    committed = consumer._committed_offset.get(tp)  # noqa: SLF001 - Faust has no public accessor
    if committed is not None:
        best = max(best, committed)
    acked = consumer._acked.get(tp)  # noqa: SLF001
    if acked:
        best = max(best, max(acked) + 1)
    return best


def lag_family(consumer: Any, tps: Iterable[Any], short_names: dict[str, str]
               ) -> GaugeMetricFamily:
    """Lag per owned input partition: high watermark (the offset the next produced message
    gets, from the consumer's last fetch) minus `next_offset`. A partition whose high
    watermark is not known yet (not fetched since assignment) is left out."""
    fam = _family("cxstream_consumer_lag_messages")
    assigned = consumer.assignment()
    for tp in sorted(tps):
        if tp not in assigned:
            continue
        try:
            high = consumer.highwater(tp)
        except (AssertionError, KeyError, RuntimeError):  # unassigned in the client right now
            continue
        if high is None:
            continue
        fam.add_metric([short_names[tp.topic], str(tp.partition)],
                       max(0, high - next_offset(consumer, tp)))
    return fam


def recovery_families(recovery: Any) -> list[GaugeMetricFamily]:
    """In progress (0/1) and changelog records still to restore for active partitions."""
    active = bool(recovery.in_recovery)
    remaining = (sum(max(0, n) for n in recovery.active_remaining().values()) if active else 0)
    progress = _family("cxstream_recovery_in_progress")
    progress.add_metric([], 1 if active else 0)
    left = _family("cxstream_recovery_remaining_messages")
    left.add_metric([], remaining)
    return [progress, left]


class WorkerCollector(Collector):
    """The scrape-time metrics of one worker (registered once per process by `install`)."""

    def __init__(self, app: Any, processor: Processor, *, ready: Callable[[], bool],
                 clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self.processor = processor
        self.ready = ready
        self.clock = clock
        #: Segment families computed by `prepare` for the next `collect`.
        self._prepared: list[GaugeMetricFamily] | None = None

    def describe(self) -> list[GaugeMetricFamily]:
        # Names only: registering must not read the (not yet started) worker.
        return [_family(spec.name) for spec in metrics.SCRAPED]

    def _scope(self) -> tuple[set[Any], list[int], bool, int]:
        """Owned input partitions (and their numbers), readiness, and `as_of`: the scores
        API's default, now floored to the whole minute."""
        processor = self.processor
        try:
            actives = set(self.app.assignor.assigned_actives())
        except Exception:  # noqa: BLE001 - no assignment to read: nothing owned
            log.exception("reading the assignment failed; exporting no owned partitions")
            actives = set()
        inputs = {tp for tp in actives if tp.topic in processor.kinds}
        owned = sorted({tp.partition for tp in inputs if tp.topic == processor.topics.surveys})
        try:
            ready = bool(self.ready())
        except Exception:  # noqa: BLE001 - e.g. the consumer has not started yet
            ready = False
        return inputs, owned, ready, floor_minute(int(self.clock() * 1000))

    async def prepare(self) -> None:
        """Compute the segment gauges for the next `collect`, a slice at a time (see the
        module's docstring); without samples if a rebalance begins meanwhile."""
        _, owned, ready, as_of = self._scope()
        scope = (owned, ready)

        def still_valid() -> bool:
            return not self.app.rebalancing and self._scope()[1:3] == scope

        try:
            fams = await segment_families_sliced(self.processor, owned if ready else (),
                                                 self.processor.settings.windows, as_of,
                                                 still_valid)
        except Exception:  # noqa: BLE001 - as `_guarded`
            log.exception("scrape-time metrics %s failed; left out of this scrape",
                          ", ".join(_FAMILIES))
            fams = None
        self._prepared = fams if fams is not None else [_family(n) for n in _FAMILIES]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        processor = self.processor
        inputs, owned, ready, as_of = self._scope()
        prepared, self._prepared = self._prepared, None
        if prepared is not None:
            yield from prepared
        else:
            yield from _guarded(
                lambda: segment_families(processor, owned if ready else (),
                                         processor.settings.windows, as_of),
                list(_FAMILIES))
        yield from _guarded(lambda: trend_families(processor, owned if ready else ()),
                            list(_TRENDS))
        yield from _guarded(
            lambda: [lag_family(self.app.consumer, inputs, processor.kinds) if ready
                     else _family("cxstream_consumer_lag_messages")],
            ["cxstream_consumer_lag_messages"])
        yield from _guarded(lambda: recovery_families(self.app.tables.recovery),
                            ["cxstream_recovery_in_progress",
                             "cxstream_recovery_remaining_messages"])
        assigned = _family("cxstream_assigned_partitions")
        assigned.add_metric([], len(owned))
        yield assigned


def _guarded(make: Callable[[], list[GaugeMetricFamily]], names: list[str]
             ) -> list[GaugeMetricFamily]:
    """`make()`, or the same families without samples if it fails: one broken reading must
    not turn the whole scrape (and every other metric) into an HTTP 500."""
    try:
        return make()
    except Exception:  # noqa: BLE001
        log.exception("scrape-time metrics %s failed; left out of this scrape", ", ".join(names))
        return [_family(name) for name in names]


_installed: dict[int, WorkerCollector] = {}


def install(app: Any, processor: Processor, *, ready: Callable[[], bool],
            registry: CollectorRegistry = metrics.REGISTRY) -> WorkerCollector:
    """Register the worker's collector on `registry` (replacing one installed before, so a
    process that builds a second app does not export the first app's state)."""
    old = _installed.pop(id(registry), None)
    if old is not None:
        registry.unregister(old)
    collector = WorkerCollector(app, processor, ready=ready)
    registry.register(collector)
    _installed[id(registry)] = collector
    return collector
