"""Offset-gap watch: report input messages fetched but never handed to the processor.

Why: Faust 0.15 could throw away messages delivered while it completed recovery after a
rebalance (see `cxstream.worker.faust_patches`, which fixes the cause we found). Such messages are
never processed nor acknowledged, so the committed offset stops below them for good and
their effects are missing. That must never pass silently: this watch finds such a hole,
logs it as an error and counts it in `cxstream_offset_gaps_total`, so ops can alert on it.

It does not seek back: a re-read message whose customer already has a later response
applied is (correctly) taken for a replay, so re-reading cannot restore exact numbers; and
seeking under Faust's running fetcher can make it skip further offsets.

A gap is certain, not guessed: the processor handles each partition in order (one per
worker, batches completed in order), so once an offset above the committed one is
acknowledged, every offset between them has either been acknowledged or was never delivered. The check still waits for
the same gap on two consecutive looks, never while a commit is under way (Faust drops the
offsets it commits from its list before it records them as committed), so it never races
Faust's own bookkeeping.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

import faust
from faust.types import TP

from cxstream import metrics

log = logging.getLogger(__name__)

#: Seconds between two looks at the consumer's acknowledgement state.
CHECK_INTERVAL_S = 5.0


def missing_range(committed: int | None, acked: Collection[int], in_flight: Iterable[int],
                  skipped: Iterable[tuple[int, int]] = ()) -> tuple[int, int] | None:
    """[first, last] offsets never acknowledged below the lowest acknowledged one, or None.

    `committed` is the next offset to process as committed to Kafka; `acked` the offsets
    acknowledged since; `in_flight` the offsets handed to the processor and not yet acknowledged;
    `skipped` the [begin, end) ranges Faust treats as acknowledged (offsets missing from the
    log, e.g. after compaction).
    """
    if committed is None:
        return None
    starts = [begin for begin, end in skipped if end > committed]
    if acked:
        starts.append(min(acked))
    if not starts:
        return None
    low = min(starts)
    if low <= committed:
        return None
    if any(committed <= o < low for o in in_flight):
        return None  # still being processed: not a gap (yet)
    return committed, low - 1


@dataclass
class GapWatch:
    """Looks for gaps on the app's input partitions and reports each once."""

    app: faust.App
    topics: dict[str, str]  # full input topic name → short name (metric label)
    seen: dict[TP, tuple[int, int]] = field(default_factory=dict)
    reported: dict[TP, tuple[int, int]] = field(default_factory=dict)

    def gaps(self) -> dict[TP, tuple[int, int]]:
        consumer = self.app.consumer
        # Faust keeps no public API for these; read defensively so a Faust upgrade that
        # renames them disables the repair instead of breaking the worker.
        acked = getattr(consumer, "_acked", {})
        committed = getattr(consumer, "_committed_offset", {})
        gap_tree = getattr(consumer, "_gap", {})
        unacked = getattr(consumer, "_unacked_messages", ())
        found = {}
        for tp in list(acked):
            if tp.topic not in self.topics:
                continue
            in_flight = [m.offset for m in list(unacked) if m.tp == tp]
            tree = gap_tree.get(tp) or ()
            rng = missing_range(committed.get(tp), list(acked.get(tp) or ()), in_flight,
                                [(iv.begin, iv.end) for iv in tree])
            if rng is not None:
                found[tp] = rng
        return found

    async def check(self) -> None:
        if getattr(self.app.consumer, "_commit_fut", None) is not None:
            # A commit is under way: Faust has already taken the acknowledged offsets it is
            # committing off its list but not yet recorded them as committed. Not a gap.
            self.seen = {}
            return
        current = self.gaps()
        confirmed = {tp: rng for tp, rng in current.items() if self.seen.get(tp) == rng}
        self.seen = current
        for tp, (first, last) in confirmed.items():
            if self.reported.get(tp) == (first, last):
                continue
            self.reported[tp] = (first, last)
            log.error("offsets %d-%d of %s[%d] were fetched but never processed, so the committed "
                      "offset cannot pass them and their effects are missing (a Faust race); "
                      "please report it with this log", first, last, tp.topic, tp.partition)
            metrics.OFFSET_GAPS.labels(self.topics[tp.topic]).inc()


def register(app: faust.App, topics: dict[str, str]) -> GapWatch:
    repair = GapWatch(app, dict(topics))

    @app.timer(CHECK_INTERVAL_S)
    async def watch_offset_gaps() -> None:
        await repair.check()

    return repair
