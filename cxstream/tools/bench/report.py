"""What the bench reports and how: the phase names, percentiles and the latency summary, the
ratios to the baseline, the printed table, the `--phases` parser, and the two resource
readings taken of the worker (peak RSS from /proc, the state's size on disk flushed and
compacted). Pure helpers, unit-tested; nothing here talks to Kafka.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

PHASES = ("windows", "baseline", "faust", "cxstream", "latency")
RATE_PHASES = ("baseline", "faust", "cxstream")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between closest ranks; None if empty."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float | int | None]:
    return {"count": len(latencies_ms),
            **{f"p{q}_ms": percentile(latencies_ms, q) for q in (50, 95, 99)},
            "max_ms": max(latencies_ms) if latencies_ms else None}


def add_ratios(results: dict[str, Any]) -> dict[str, Any]:
    """Set `ratio_to_baseline` (rate / baseline rate) on every rate phase present, in place;
    None when there is no usable baseline."""
    base = (results.get("baseline") or {}).get("events_per_s")
    for name in RATE_PHASES:
        r = results.get(name)
        if isinstance(r, dict) and "events_per_s" in r:
            r["ratio_to_baseline"] = (r["events_per_s"] / base) if base and r["events_per_s"] else None
    return results


def _fmt(v: Any, spec: str = ",.0f") -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and spec:
        return format(v, spec)
    return str(v)


def render_table(results: dict[str, Any]) -> str:
    """The human-readable report: rates with their ratio to the baseline first (the headline),
    then alert latency, resources and the windows comparison; phases not run are left out."""
    lines: list[str] = []
    rows = [(n, results[n]) for n in RATE_PHASES if isinstance(results.get(n), dict)]
    if rows:
        lines.append(f"{'phase':<10} {'events':>9} {'seconds':>9} {'events/s':>11} {'vs baseline':>12}")
        for name, r in rows:
            ratio = r.get("ratio_to_baseline")
            lines.append(f"{name:<10} {r.get('events', 0):>9} {_fmt(r.get('seconds'), '.2f'):>9} "
                         f"{_fmt(r.get('events_per_s')):>11} "
                         f"{('-' if ratio is None else f'{ratio:.1%}'):>12}")
    lat = results.get("latency")
    if isinstance(lat, dict):
        lines.append("")
        lines.append(f"alert latency at {_fmt(lat.get('offered_events_per_s'))} events/s offered "
                     f"({_fmt(lat.get('sent_events_per_s'))} sent, {lat.get('alerts', 0)} alerts): "
                     f"p50 {_fmt(lat.get('p50_ms'), '.0f')} ms, p95 {_fmt(lat.get('p95_ms'), '.0f')} ms, "
                     f"p99 {_fmt(lat.get('p99_ms'), '.0f')} ms, max {_fmt(lat.get('max_ms'), '.0f')} ms")
        if "backlog_at_send_end" in lat:
            lines.append(f"  worker fetch-to-alert-ack mean "
                         f"{_fmt(lat.get('worker_receipt_to_ack_mean_ms'), '.0f')} ms; backlog when "
                         f"sending stopped {_fmt(lat.get('backlog_at_send_end'), '.0f')} events, "
                         f"drained {_fmt(lat.get('drain_after_send_s'), '.1f')} s later")
    core = results.get("machine", {}).get("core")
    if core is not None:  # the worker's speed depends on it (README, "Compiled core")
        lines.append("core: compiled (mypyc)" if core == "compiled" else
                     "core: plain Python, NOT compiled (README, \"Compiled core\"): slower")
    cx = results.get("cxstream")
    if isinstance(cx, dict) and cx.get("peak_rss_mb") is not None:
        lines.append(f"worker peak RSS (VmHWM): {cx['peak_rss_mb']:.0f} MB "
                     f"({_fmt(cx.get('customers_with_events'))} customers with state, "
                     f"store {cx.get('store')})")
    if isinstance(cx, dict) and cx.get("state_bytes_on_disk") is not None:
        lines.append(f"state on disk, flushed and compacted: "
                     f"{cx['state_bytes_compacted'] / 1024**2:.1f} MB, "
                     f"{_fmt(cx.get('state_bytes_per_response'))} bytes per response, "
                     f"{_fmt(cx.get('state_bytes_per_customer'))} bytes per customer "
                     f"(the worker's directory: {cx['state_bytes_on_disk'] / 1024**2:.1f} MB, "
                     "write-ahead log included)")
    w = results.get("windows")
    if isinstance(w, dict):
        lines.append("")
        lines.append(f"{'windows':<16} {'µs/response':>12} {'writes/response':>16} {'buckets/query':>14}")
        for label in ("1h", "1h,24h,7d,30d"):
            row = w[label]
            lines.append(f"{label:<16} {row['us_per_response']:>12.1f} "
                         f"{row['writes_per_response']:>16.2f} {row['buckets_per_query_max']:>14}")
        lines.append(f"cost ratio (up to 30 d) / (1 h only): {w['ratio_30d_vs_1h']:.2f}")
    for name, err in (results.get("errors") or {}).items():
        lines.append(f"{name}: FAILED: {err}")
    return "\n".join(lines)


def parse_phases(raw: str) -> list[str]:
    """A comma list of phases in run order; `latency` needs `cxstream` and adds it."""
    wanted = [p.strip() for p in raw.split(",") if p.strip()]
    unknown = [p for p in wanted if p not in PHASES]
    if unknown or not wanted:
        raise ValueError(f"unknown phase(s) {', '.join(unknown) or '(none)'}; "
                         f"expected a comma list of {', '.join(PHASES)}")
    if "latency" in wanted and "cxstream" not in wanted:
        wanted.append("cxstream")
    return [p for p in PHASES if p in wanted]


def vm_hwm_kb(pid: int) -> int | None:
    """Peak resident set size of a process in kB (Linux /proc), or None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def compacted_state_bytes(root: Path) -> int:
    """Bytes of SST files the state under `root` (every RocksDB database in it, the running
    worker's included) takes once flushed and compacted: each database read as it is now
    (read-only, beside the worker) into a fresh one with the worker's options, flushed and
    compacted. Why not the directory's size: until RocksDB flushes a memtable, its writes sit
    uncompressed in the write-ahead log, each version of an entry again, so that size depends
    on when the last flush happened, not on the state."""
    import rocksdict
    from faust.stores.rocksdb import RocksDBOptions

    from cxstream.app import ROCKSDB_OPTIONS

    total = 0
    for current in sorted(root.rglob("CURRENT")):
        source = rocksdict.Rdict(str(current.parent), rocksdict.Options(raw_mode=True),
                                 access_type=rocksdict.AccessType.read_only())
        with tempfile.TemporaryDirectory(prefix="cxstream-bench-state-") as tmp:
            copy = rocksdict.Rdict(tmp, RocksDBOptions(**ROCKSDB_OPTIONS,
                                                       use_rocksdict=True).as_options())
            try:
                batch = rocksdict.WriteBatch(raw_mode=True)
                for key, value in source.items():
                    batch.put(key, value)
                copy.write(batch)
                copy.flush()
                copy.compact_range(None, None)
            finally:
                copy.close()
                source.close()
            total += sum(f.stat().st_size for f in Path(tmp).glob("*.sst"))
    return total


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total
