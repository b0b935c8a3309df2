"""The bench's pure `windows` phase: the worker's per-response processing step (plan, apply
the writes, expire old buckets) replayed in memory, without Kafka, once with only a 1 h
window and once with 1 h + 24 h + 7 d + 30 d, on the same simulated responses, to show what
the longer windows cost per response.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import orjson

from cxstream.core import keys
from cxstream.core.expiry import ExpiryIndex
from cxstream.core.step import StepConfig, plan
from cxstream.core.windows import DAY, HOUR, cover, horizon_ms, parse_windows
from cxstream.tools.bench.report import percentile
from cxstream.tools.progress import Progress
from cxstream.tools.simulator import Simulator
from cxstream.worker import gc_tuning


def _responses(n: int, seed: int) -> list[tuple[bytes, bytes]]:
    sim = Simulator(seed=seed, customers=2000)
    end = int(time.time() * 1000) - HOUR
    start = end - 40 * DAY
    out: list[tuple[bytes, bytes]] = []
    i = 0
    while len(out) < n:
        topic, doc = sim.event(start + (end - start) * i // (3 * n))
        i += 1
        if topic == "surveys":
            out.append((doc["customer_id"].encode(), orjson.dumps(doc)))
    return out


class _Replay:
    """One window set's pure step over an in-memory table (the worker's work per response,
    without Kafka): plan, apply the writes, expire buckets out of retention."""

    def __init__(self, windows: str, now_ms: int) -> None:
        self.windows = parse_windows(windows)
        self.cfg = StepConfig(horizon_ms=horizon_ms(self.windows, HOUR))
        self.table: dict[str, Any] = {}
        self.index = ExpiryIndex()
        self.now_ms = now_ms
        self.writes = 0

    def feed(self, responses: Sequence[tuple[bytes, bytes]], first_offset: int) -> float:
        """Process `responses` (at offsets from `first_offset`); returns the seconds taken."""
        table, index, cfg, now = self.table, self.index, self.cfg, self.now_ms
        started = time.perf_counter()
        for offset, (key, value) in enumerate(responses, first_offset):
            p = plan("surveys", table, cfg, partition=0, offset=offset, key=key, value=value,
                     now_ms=now)
            for k, v in p.before_alert + p.after_alert:
                table[k] = v
                self.writes += 1
                if k.startswith(keys.BUCKET_PREFIX):
                    index.add_bucket(k, v)
            if p.stream_time is not None:
                for k in index.pop_expired(p.stream_time - cfg.horizon_ms):
                    del table[k]
        return time.perf_counter() - started

    def buckets_per_query_max(self) -> int:
        longest = max(w.ms for w in self.windows)
        return max(len(cover(t - longest, t))
                   for t in range(60_000 * 10**7, 60_000 * 10**7 + DAY, 7 * 60_000))


def _median(values: Sequence[float]) -> float:
    return percentile(values, 50.0)  # type: ignore[return-value]


WINDOW_SETS = ("1h", "1h,24h,7d,30d")


def windows_phase(n: int = 20_000, seed: int = 7, rounds: int = 5,
                  chunk: int = 500) -> dict[str, Any]:
    """Both window sets on the same responses, `rounds` passes, each from empty tables. Within
    a pass they run in pairs: each `chunk` of responses goes through one set, then straight
    away through the other (which goes first alternates), so both share whatever else this
    machine does at that moment, which whole runs one after the other would not.
    A pass's ratio is its total time with the long windows over that with 1 h; the result is
    the median pass. Runs with the worker's garbage-collector settings (`cxstream.worker.gc_tuning`):
    the longer windows keep more buckets alive, and how often the collector walks them is
    part of their cost."""
    if n < 1 or chunk < 1 or rounds < 1:
        raise ValueError("n, chunk and rounds must be at least 1")
    responses = _responses(n, seed)
    passes: list[dict[str, float]] = []
    writes = {label: 0 for label in WINDOW_SETS}
    replays: dict[str, _Replay] = {}
    progress = Progress(f"bench windows {' vs '.join(WINDOW_SETS)} ({rounds} passes)",
                        2 * rounds * n, unit="responses")
    now = int(time.time() * 1000)
    with gc_tuning.tuned():
        for _ in range(rounds):
            replays = {label: _Replay(label, now) for label in WINDOW_SETS}
            took = {label: 0.0 for label in WINDOW_SETS}
            for i, first in enumerate(range(0, n, chunk)):
                part = responses[first:first + chunk]
                for label in (WINDOW_SETS if i % 2 == 0 else WINDOW_SETS[::-1]):
                    took[label] += replays[label].feed(part, first)
                progress.update(2 * len(part))
            passes.append(took)
            for label in WINDOW_SETS:
                writes[label] += replays[label].writes
    progress.close()
    short, long_ = WINDOW_SETS
    results: dict[str, Any] = {
        label: {"us_per_response": _median([p[label] / n * 1e6 for p in passes]),
                "writes_per_response": writes[label] / (rounds * n),
                "buckets_per_query_max": replays[label].buckets_per_query_max()}
        for label in WINDOW_SETS}
    results["ratio_30d_vs_1h"] = _median([p[long_] / p[short] for p in passes])
    results["ratios_per_pass"] = [p[long_] / p[short] for p in passes]
    results["responses"] = n
    results["rounds"] = rounds
    return results
