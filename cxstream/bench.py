"""`cxstream bench`: measurements reported as ratios from one run on this machine.

Phase `windows` (pure, in-process): the per-response cost of the processing step with only
a 1 h window versus 1 h + 24 h + 7 d + 30 d, on the same simulated responses spread over 40
days. Buckets make the write count per response independent of window length, so the ratio
should be ~1. Kafka phases (baseline consumer, Faust floor, full pipeline, alert latency)
are the performance issue's work and not here yet.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from cxstream.core import keys
from cxstream.core.expiry import ExpiryIndex
from cxstream.core.step import StepConfig, plan
from cxstream.core.windows import DAY, HOUR, cover, horizon_ms, parse_windows
from cxstream.progress import Progress
from cxstream.simulator import Simulator


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


def _run(responses: list[tuple[bytes, bytes]], windows: str, progress: Progress) -> dict[str, float]:
    ws = parse_windows(windows)
    cfg = StepConfig(horizon_ms=horizon_ms(ws, HOUR))
    table: dict[str, Any] = {}
    index = ExpiryIndex()
    now = int(time.time() * 1000)
    writes = 0
    started = time.perf_counter()
    for offset, (key, value) in enumerate(responses):
        p = plan("surveys", table, cfg, partition=0, offset=offset, key=key, value=value, now_ms=now)
        for k, v in p.before_alert + p.after_alert:
            table[k] = v
            writes += 1
            if k.startswith("b|") and k not in index:
                _, res, start, seg = keys.parse_bucket_key(k)
                index.add(k, seg, start + res)
        if p.stream_time is not None:
            for k in index.pop_expired(p.stream_time - cfg.horizon_ms):
                del table[k]
        progress.update()
    elapsed = time.perf_counter() - started
    longest = max(w.ms for w in ws)
    return {"us_per_response": elapsed / len(responses) * 1e6,
            "writes_per_response": writes / len(responses),
            "buckets_per_query_max": max(len(cover(t - longest, t))
                                         for t in range(60_000 * 10**7, 60_000 * 10**7 + DAY, 7 * 60_000))}


def windows_phase(n: int = 20_000, seed: int = 7) -> dict[str, Any]:
    responses = _responses(n, seed)
    results = {}
    for label, windows in (("1h", "1h"), ("1h,24h,7d,30d", "1h,24h,7d,30d")):
        progress = Progress(f"bench windows={label}", n, unit="responses")
        results[label] = _run(responses, windows, progress)
        progress.close()
    results["ratio_30d_vs_1h"] = (results["1h,24h,7d,30d"]["us_per_response"]
                                  / results["1h"]["us_per_response"])
    results["responses"] = n
    return results
