"""`cxstream bench`: measurements reported as ratios from one run on this machine.

Phases (each a function returning a dict; `run_bench` chains them and the CLI prints a table):

* `windows` (pure, in-process): the per-response cost of the processing step with only a 1 h
  window versus 1 h + 24 h + 7 d + 30 d, on the same simulated responses spread over 40 days.
  Buckets make the write count per response independent of window length: the ratio should be ~1
  (what remains is the larger state's cache misses). The two run in alternating pairs of small
  chunks, so this machine's other work weighs on both alike.
* `baseline`: a plain aiokafka consumer (assigned partitions, no group) that fetches and
  orjson-decodes every message of the produced inputs; three passes, each timed from its
  first fetch that returned records (those left out of the rate) to its last record, the
  median reported.
* `faust`: the Faust floor, a do-nothing agent (`floor_main`, run in a subprocess) on the
  same topics; from its first event until its group's committed offsets reach
  the end offsets.
* `cxstream`: a real `cxstream worker` subprocess (RocksDB store when available) on the same
  topics; from the moment it is ready (`/readyz`: partitions assigned, state recovered; the
  input is already there, so it starts at once) until its group's committed offsets reach the
  end offsets. Not from its first processed event: events are counted when their batch is
  complete, which would leave the first batch out. Also peak RSS (VmHWM) and the state's
  size on disk: the worker's directory as it is, and the state flushed and compacted
  (`compacted_state_bytes`).
* `latency`: with that worker still running, live events at half the measured cxstream rate;
  time from just before `send()` of a response to receiving its alert on the alert topic.

Every run writes under its own topic prefix (`<CXSTREAM_TOPIC_PREFIX>bench-<id>.`), so runs and
phases never mix; the topics are deleted at the end unless asked to keep them.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import orjson

from cxstream.worker import gc_tuning
from cxstream.worker.changelog import send_full
from cxstream.tools.demo import stop_process
from cxstream.core import compiled as core_compiled
from cxstream.core import keys
from cxstream.core.expiry import ExpiryIndex
from cxstream.core.step import StepConfig, plan
from cxstream.core.timefmt import format_rfc3339
from cxstream.core.windows import DAY, HOUR, cover, horizon_ms, parse_windows
from cxstream.tools.progress import Progress
from cxstream.tools.simulator import Customer, Simulator

PHASES = ("windows", "baseline", "faust", "cxstream", "latency")
RATE_PHASES = ("baseline", "faust", "cxstream")
#: How often the latency phase sends what is due. Each event's clock starts when it is created,
#: so the tick adds nothing to the measured latency; but every tick is a produce request per
#: partition, and at 2 ms the bench's producer took about 50 µs of CPU per event (35 at 10 ms)
#: from the 2 cores it shares with the worker and the broker.
SEND_TICK_S = 0.01


# -- pure helpers (unit-tested) -----------------------------------------------------------------
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
    on when the last flush happened (44 MB, and 22 MB a second later, for the same state)."""
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


# -- phase: windows (pure) --------------------------------------------------------------------
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
    machine does at that moment; whole runs one after the other differed by ±15 % here.
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


# -- Kafka phases -----------------------------------------------------------------------------
class BenchError(RuntimeError):
    """A phase could not measure; the message says why (and where the log is)."""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rocksdb_available() -> bool:
    try:
        import rocksdict  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    data_dir: Path
    headers: dict[str, str]


@dataclass
class Run:
    """One bench run against one broker: its own topic prefix, data and subprocesses."""

    settings: Any  # cxstream.config.settings.Settings with the run's topic prefix
    env: dict[str, str]  # environment for subprocesses (CXSTREAM_BROKER set)
    workdir: Path
    events: int
    customers: int
    seed: int
    sim: Simulator | None = None
    responses: int = 0
    customers_with_events: int = 0
    end: dict[Any, int] = field(default_factory=dict)  # input TopicPartition -> end offset
    worker: _Worker | None = None
    cx_rate: float | None = None

    @property
    def prefix(self) -> str:
        return self.settings.topic_prefix

    @property
    def inputs(self) -> list[str]:
        from cxstream.kafka.topics import Topics

        t = Topics(self.prefix)
        return [t.surveys, t.interactions, t.customers]

    def timeout_s(self) -> float:
        return 120.0 + self.events / 200

    def security(self) -> dict[str, Any]:
        from cxstream.kafka.security import client_kwargs

        return client_kwargs(self.settings)


async def _partitions(run: Run, topics: Iterable[str]) -> list[Any]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=run.settings.bootstrap, **run.security())
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # noqa: SLF001 - fresh topic metadata
        return [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
    finally:
        await consumer.stop()


async def _end_offsets(run: Run, tps: list[Any]) -> dict[Any, int]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=run.settings.bootstrap, **run.security())
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


def first_events(customers: Sequence[Customer], events: int, seed: int) -> dict[int, Customer]:
    """Event index -> the customer it goes to, for every `events // len(customers)`-th event
    (the first one included), the customers in a seeded random order; the other events pick
    theirs at random. So with at least as many events as customers, every simulated customer
    has an event and holds state, as the issue's memory figure asks (100 000 customers in
    state): picked at random only, 200 000 events reached 86 % of 100 000 customers."""
    order = list(customers)
    random.Random(seed).shuffle(order)
    step = max(1, events // max(len(order), 1))
    return {i * step: c for i, c in enumerate(order[:events])}


async def produce_inputs(run: Run) -> dict[str, Any]:
    """N simulated interactions and survey responses (about 30 %), keyed by customer_id, with
    occurred_at spread in order over the last 7 days, to the run's input topics."""
    from aiokafka import AIOKafkaProducer

    from cxstream.kafka.admin import ensure_topics

    await ensure_topics(run.settings)
    sim = Simulator(seed=run.seed, customers=run.customers)
    producer = AIOKafkaProducer(bootstrap_servers=run.settings.bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=10,
                                max_batch_size=512 * 1024, **run.security())
    await producer.start()
    end_ms = int(time.time() * 1000) - HOUR
    start_ms = end_ms - 7 * DAY
    counts = {"surveys": 0, "interactions": 0}
    seen: set[str] = set()
    firsts = first_events(sim.customers, run.events, run.seed)
    progress = Progress("bench produce", run.events, unit="events")
    started = time.time()
    try:
        pending = []
        for i in range(run.events):
            short, doc = sim.event(start_ms + (end_ms - start_ms) * i // run.events,
                                   customer=firsts.get(i))
            counts[short] += 1
            seen.add(doc["customer_id"])
            pending.append(await producer.send(f"{run.prefix}{short}", orjson.dumps(doc),
                                               key=doc["customer_id"].encode()))
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                progress.update(len(pending))
                pending.clear()
        await asyncio.gather(*pending)
        progress.update(len(pending))
    finally:
        await producer.stop()
        progress.close()
    elapsed = time.time() - started
    run.sim, run.responses, run.customers_with_events = sim, counts["surveys"], len(seen)
    run.end = await _end_offsets(run, await _partitions(run, run.inputs))
    if sum(run.end.values()) != run.events:
        raise BenchError(f"expected {run.events} messages on the input topics, found "
                         f"{sum(run.end.values())} (topics not empty?)")
    return {"events": run.events, "responses": counts["surveys"],
            "interactions": counts["interactions"], "customers": run.customers,
            "customers_with_events": len(seen), "seconds": elapsed,
            "events_per_s": run.events / elapsed}


def _rate(events: int, first: float, last: float) -> dict[str, Any]:
    seconds = max(last - first, 1e-6)
    return {"events": events, "seconds": seconds, "events_per_s": events / seconds}


#: Passes of the baseline read; the median one is reported (one pass takes under a second).
BASELINE_PASSES = 3


async def baseline_phase(run: Run) -> dict[str, Any]:
    """A plain aiokafka consumer: assign every input partition, fetch from the beginning and
    orjson-decode every value, until the end offsets measured after producing.

    Read `BASELINE_PASSES` times (each pass timed as `_read_to_end` says), and the median
    pass reported: a pass takes under a second, so the first fetch's wait and this
    machine's noise moved a single timing by up to a third, and the baseline is the
    denominator of every ratio."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=run.settings.bootstrap, enable_auto_commit=False,
                                group_id=None, **run.security())
    await consumer.start()
    progress = Progress("bench baseline", run.events * BASELINE_PASSES, unit="events")
    try:
        tps = list(run.end)
        consumer.assign(tps)
        passes = []
        for _ in range(BASELINE_PASSES):
            await consumer.seek_to_beginning(*tps)
            passes.append(await _read_to_end(consumer, run, progress))
    finally:
        await consumer.stop()
        progress.close()
    passes.sort(key=lambda r: r["events_per_s"])
    return {**passes[len(passes) // 2],
            "passes_events_per_s": [round(r["events_per_s"]) for r in passes]}


async def _read_to_end(consumer: Any, run: Run, progress: Progress) -> dict[str, Any]:
    """One baseline pass: fetch and decode until every partition's end offset. Timed from
    the first fetch that returned records: the records of that fetch are left out of the
    rate (their fetch is not in the time), not out of the count. A pass that one fetch
    covers (a tiny run) is timed from before that fetch instead."""
    remaining = {tp for tp in run.end if run.end[tp] > 0}
    n = 0
    started = time.time()
    first: float | None = None
    untimed = 0
    deadline = started + run.timeout_s()
    while remaining:
        if time.time() > deadline:
            raise BenchError(f"baseline consumer read {n} of {run.events} events in time")
        batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
        if first is None and batch:
            first = time.time()
            untimed = sum(len(records) for records in batch.values())
        for tp, records in batch.items():
            for rec in records:
                orjson.loads(rec.value)
            n += len(records)
            progress.update(len(records))
            if records and records[-1].offset + 1 >= run.end[tp]:
                remaining.discard(tp)
    last = time.time()
    if first is None or untimed >= n:
        first, untimed = started, 0
    return {**_rate(n - untimed, first, last), "events": n}


async def _committed_done(run: Run, group: str, progress: Progress,
                          alive: Callable[[], str | None], what: str) -> float:
    """Poll `group`'s committed offsets until they reach the input end offsets; returns the
    wall time when they did. `alive()` returns an error text once the process died."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=run.settings.bootstrap, **run.security())
    await admin.start()
    try:
        deadline = time.time() + run.timeout_s()
        while True:
            committed = await admin.list_consumer_group_offsets(group)
            done = 0
            for tp, end in run.end.items():
                meta = committed.get(tp)
                done += min(meta.offset, end) if meta is not None and meta.offset > 0 else 0
            progress.update(done - progress.done)
            if done >= run.events:
                return time.time()
            problem = alive()
            if problem:
                raise BenchError(problem)
            if time.time() > deadline:
                raise BenchError(f"{what}: group {group} committed {done} of {run.events} in time")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def _wait_until(check: Callable[[], Any], timeout_s: float, what: str,
                      alive: Callable[[], str | None], interval_s: float = 0.1) -> Any:
    deadline = time.time() + timeout_s
    while True:
        got = await check()
        if got:
            return got
        problem = alive()
        if problem:
            raise BenchError(problem)
        if time.time() > deadline:
            raise BenchError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        await asyncio.sleep(interval_s)


def floor_main(group: str, topics: str, data_dir: str, marker: str) -> None:
    """The Faust floor process: a do-nothing agent on `topics` (raw bytes, no decoding), with
    the worker's consumer settings; writes the wall time of its first event to `marker`."""
    import faust

    from cxstream.kafka.security import faust_credentials
    from cxstream.config.settings import Settings

    cfg = Settings.from_env()
    app = faust.App(group, env={}, broker=cfg.broker, broker_credentials=faust_credentials(cfg),
                    store="memory://", datadir=data_dir, autodiscover=False,
                    topic_replication_factor=cfg.replication, key_serializer="raw",
                    value_serializer="raw", consumer_auto_offset_reset="earliest",
                    broker_session_timeout=cfg.session_timeout, broker_commit_every=1000,
                    broker_commit_interval=1.0, stream_buffer_maxsize=1024, web_enabled=False)
    source = app.topic(*topics.split(","), key_serializer="raw", value_serializer="raw")

    @app.agent(source, concurrency=1)
    async def floor(stream: Any) -> None:
        first = True
        async for _ in stream:
            if first:
                first = False
                Path(marker).write_text(repr(time.time()))

    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


async def faust_phase(run: Run) -> dict[str, Any]:
    """The Faust floor in a subprocess; from its first event until its group committed every
    input offset."""
    group = f"{run.prefix}floor"
    d = run.workdir / "floor"
    d.mkdir(parents=True, exist_ok=True)
    marker, log_path = d / "first-event", d / "floor.log"
    code = "import sys; from cxstream.tools.bench.run import floor_main; floor_main(*sys.argv[1:])"
    with log_path.open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-c", code, group, ",".join(run.inputs), str(d / "data"),
                                 str(marker)], env=run.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    progress = Progress("bench faust floor", run.events, unit="events")

    def alive() -> str | None:
        if proc.poll() is not None:
            return f"the Faust floor process exited with {proc.returncode}; see {log_path}"
        return None

    spawned = time.time()
    try:
        async def first_event() -> float | None:
            try:
                return float(marker.read_text())
            except (OSError, ValueError):
                return None

        first = await _wait_until(first_event, 120, "the Faust floor's first event", alive)
        last = await _committed_done(run, group, progress, alive, "faust floor")
    finally:
        progress.close()
        stop_process(proc)
    return {**_rate(run.events, first, last), "startup_s": first - spawned}


async def _get(w: _Worker, path: str) -> tuple[int, str] | None:
    """Status and body of the worker's `path`; None when it does not answer."""
    import aiohttp

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2),
                                         headers=w.headers) as s:
            async with s.get(f"{w.url}{path}") as r:
                return r.status, await r.text()
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
        return None


async def _scrape(w: _Worker) -> dict[str, float] | None:
    """The worker's /metrics, each sample name summed over its labels; None if unanswered."""
    from prometheus_client.parser import text_string_to_metric_families

    got = await _get(w, "/metrics")
    if got is None or got[0] != 200:
        return None
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(got[1]):
        for sample in fam.samples:
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


async def _ready(w: _Worker) -> bool:
    got = await _get(w, "/readyz")
    return got is not None and got[0] == 200


async def _events_total(w: _Worker) -> float | None:
    m = await _scrape(w)
    return None if m is None else m.get("cxstream_events_total", 0.0)


def _start_worker(run: Run) -> _Worker:
    from cxstream.api.auth import auth_headers, resolve_token

    port = _free_port()
    data_dir = run.workdir / "worker"
    env = {**run.env, "CXSTREAM_TOPIC_PREFIX": run.prefix, "CXSTREAM_WEB_PORT": str(port),
           "CXSTREAM_WEB_BIND": "127.0.0.1", "CXSTREAM_WEB_HOST": "127.0.0.1",
           "CXSTREAM_DATA_DIR": str(data_dir), "CXSTREAM_NOTIFY_CONFIG": "",
           "CXSTREAM_LOG_LEVEL": "warn"}
    if _rocksdb_available():
        env["CXSTREAM_STORE"] = "rocksdb://"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = run.workdir / "worker.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "cxstream", "worker"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    return _Worker(proc, f"http://127.0.0.1:{port}", log_path, data_dir,
                   auth_headers(resolve_token(run.settings)))


async def cxstream_phase(run: Run, *, measure_resources: bool = True) -> dict[str, Any]:
    """A real `cxstream worker` on the run's topics: from the moment it is ready until its
    group committed every input offset (see the module docstring). The worker keeps running
    for the latency phase; `finish_worker` stops it."""
    w = run.worker = _start_worker(run)
    progress = Progress("bench cxstream", run.events, unit="events")

    def alive() -> str | None:
        if w.proc.poll() is not None:
            why = " (a clean stop: something sent it SIGTERM or SIGINT)" if w.proc.returncode == 0 else ""
            return f"the cxstream worker exited with {w.proc.returncode}{why}; see {w.log}"
        return None

    spawned = time.time()
    try:
        async def ready() -> float | None:
            return time.time() if await _ready(w) else None

        first = await _wait_until(ready, 180, "the worker to be ready", alive, interval_s=0.02)
        last = await _committed_done(run, run.settings.group_id, progress, alive, "cxstream worker")
    finally:
        progress.close()
    processed = await _events_total(w)
    out: dict[str, Any] = {**_rate(run.events, first, last), "startup_s": first - spawned,
                           "events_total_metric": processed, "customers": run.customers,
                           "customers_with_events": run.customers_with_events,
                           "responses": run.responses,
                           "store": "rocksdb://" if _rocksdb_available() else "memory://"}
    if measure_resources and out["store"] == "rocksdb://":
        size = dir_bytes(w.data_dir / "worker")
        compacted = compacted_state_bytes(w.data_dir / "worker")
        out.update(state_bytes_on_disk=size, state_bytes_compacted=compacted,
                   state_bytes_per_response=compacted / max(run.responses, 1),
                   state_bytes_per_customer=compacted / max(run.customers_with_events, 1))
    run.cx_rate = out["events_per_s"]
    return out


async def latency_phase(run: Run, seconds: float = 30.0, rate: float | None = None) -> dict[str, Any]:
    """Live events (occurred_at = now) at a fixed offered rate, half the measured cxstream rate
    unless given; latency = alert received on the alert topic − just before send() of its
    response (both clocks of this machine)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from cxstream.kafka.topics import Topics

    w, sim = run.worker, run.sim
    if w is None or sim is None or (rate is None and not run.cx_rate):
        raise BenchError("the latency phase needs the cxstream phase's worker and rate")
    if w.proc.poll() is not None:
        raise BenchError(f"the cxstream worker exited with {w.proc.returncode}; see {w.log}")
    offered = rate if rate is not None else run.cx_rate / 2  # type: ignore[operator]
    total = max(1, int(offered * seconds))
    alerts_topic = Topics(run.prefix).alerts
    consumer = AIOKafkaConsumer(bootstrap_servers=run.settings.bootstrap, enable_auto_commit=False,
                                group_id=None, fetch_max_wait_ms=5, isolation_level="read_committed",
                                **run.security())
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=run.settings.bootstrap, acks="all",
                                enable_idempotence=True, **run.security())
    await producer.start()
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    alerts = [0]
    stop = asyncio.Event()

    async def collect() -> None:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=50)
            now = time.time()
            for records in batch.values():
                for rec in records:
                    alerts[0] += 1
                    t = sent_at.get(orjson.loads(rec.value).get("survey_event_id"))
                    if t is not None:
                        latencies.append((now - t) * 1000)

    partitions = {t: sorted(tp.partition for tp in await _partitions(run, [t])) for t in run.inputs}
    events = _prepare_live(sim, total, partitions, run.prefix)
    progress = Progress(f"bench latency at {offered:,.0f}/s", total, unit="events")
    tps = await _partitions(run, [alerts_topic])
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)  # resolve "end" now, before anything is sent
    before = await _scrape(w) or {}
    collector = asyncio.create_task(collect())
    try:
        t0 = time.time()
        sent = 0
        pending = []
        while sent < total:
            due = min(total, int((time.time() - t0) * offered) + 1)
            batches = _Batches(producer)
            now = time.time()
            occurred = format_rfc3339(int(now * 1000)).encode()
            while sent < due:
                topic, partition, key, parts, survey_id = events[sent]
                events[sent] = None  # type: ignore[call-overload]  # sent: let it go
                if survey_id is not None:
                    sent_at[survey_id] = now
                pending.extend(await batches.add(topic, partition, key, occurred.join(parts)))
                sent += 1
            pending.extend(await batches.send())
            progress.update(due - progress.done)
            if len(pending) > 1000:
                await asyncio.gather(*pending)
                pending.clear()
            await asyncio.sleep(SEND_TICK_S)
        await asyncio.gather(*pending)
        send_s = time.time() - t0
        processed_at_send_end = (await _events_total(w) or 0.0) - (before.get("cxstream_events_total") or 0.0)
        # Let the worker finish: every input offset processed, then a moment for the alerts.
        tps_in = await _partitions(run, run.inputs)
        run.end = await _end_offsets(run, tps_in)
        run.events = sum(run.end.values())
        import io

        quiet = Progress("bench latency drain", run.events, stream=io.StringIO())
        drained = await _committed_done(
            run, run.settings.group_id, quiet,
            lambda: None if w.proc.poll() is None else f"worker died; see {w.log}", "latency drain")
        quiet.close()
        await asyncio.sleep(2.0)
        after = await _scrape(w) or {}
    finally:
        stop.set()
        await collector
        progress.close()
        await producer.stop()
        await consumer.stop()
    return {"offered_events_per_s": offered, "sent_events_per_s": total / send_s,
            "events": total, "responses": len(sent_at), "alerts": len(latencies),
            "alerts_on_topic": alerts[0],
            "seconds": send_s, **latency_summary(latencies),
            # Where the time goes: behind at the end of sending (events not yet handled), how long
            # the worker needed after the last send to commit everything, and the worker's own
            # mean from fetching a response to the broker acknowledging its alert.
            "backlog_at_send_end": total - processed_at_send_end,
            "drain_after_send_s": drained - (t0 + send_s),
            "worker_receipt_to_ack_mean_ms": _delta_mean(before, after,
                                                         "cxstream_alert_delay_from_receipt_seconds")}


#: `occurred_at` of the events `_prepare_live` makes up, replaced when they are sent.
_OCCURRED_MARK_MS = 978_307_200_001
_OCCURRED_MARK = format_rfc3339(_OCCURRED_MARK_MS).encode()  # 2001-01-01T00:00:00.001Z


def _prepare_live(sim: Simulator, total: int, partitions: dict[str, list[int]],
                  prefix: str) -> list[tuple[str, int, bytes, list[bytes], str | None]]:
    """The latency phase's events, made up before its clock starts: (topic, partition, key,
    the JSON value split where its `occurred_at` goes, the survey's event id or None).

    Why: making an event up while sending (the simulator, the murmur2 partitioner and the
    JSON encoding, in Python) took about 20 µs of the bench's CPU per event, on the two
    cores the worker and the broker share: a third of a core at 17 000 events/s. Partitions
    are chosen as the producer's default partitioner does (murmur2 of the key), so the
    inputs stay co-partitioned by customer."""
    from aiokafka.partitioner import DefaultPartitioner

    choose = DefaultPartitioner()
    progress = Progress("bench latency: preparing events", total, unit="events")
    events = []
    try:
        for i in range(total):
            short, doc = sim.event(_OCCURRED_MARK_MS)
            key, topic = doc["customer_id"].encode(), f"{prefix}{short}"
            parts = partitions[topic]
            events.append((topic, choose(key, parts, parts), key,
                           orjson.dumps(doc).split(_OCCURRED_MARK),
                           doc["event_id"] if short == "surveys" else None))
            if i % 10_000 == 9_999:
                progress.update(10_000)
        progress.update(total - progress.done)
    finally:
        progress.close()
    return events


class _Batches:
    """The records of one send tick, as one record batch per topic partition: what
    `producer.send` does per record (its partitioner, accumulator and a future each) cost the
    bench about as much CPU per event as the worker's processing, on the cores they share."""

    def __init__(self, producer: Any) -> None:
        self.producer = producer
        self.open: dict[tuple[str, int], Any] = {}

    async def add(self, topic: str, partition: int, key: bytes, value: bytes) -> list[Any]:
        """Add one record; returns the futures of batches that filled up meanwhile."""
        builder = self.open.get((topic, partition))
        if builder is None:
            builder = self.open[topic, partition] = self.producer.create_batch()
        if builder.append(key=key, value=value, timestamp=None) is not None:
            return []
        self.open[topic, partition], full = await send_full(self.producer, builder, topic,
                                                            partition, key, value)
        return [full]

    async def send(self) -> list[Any]:
        """Send every open batch; returns their futures."""
        futures = [await self.producer.send_batch(b, topic, partition=partition)
                   for (topic, partition), b in self.open.items()]
        self.open.clear()
        return futures


def _delta_mean(before: dict[str, float], after: dict[str, float], histogram: str) -> float | None:
    n = after.get(f"{histogram}_count", 0.0) - before.get(f"{histogram}_count", 0.0)
    total = after.get(f"{histogram}_sum", 0.0) - before.get(f"{histogram}_sum", 0.0)
    return total / n * 1000 if n > 0 else None


def finish_worker(run: Run, measure_rss: bool) -> dict[str, Any]:
    """Peak RSS over the worker's whole life (both phases), then a clean stop."""
    w = run.worker
    if w is None:
        return {}
    out: dict[str, Any] = {}
    if measure_rss:
        kb = vm_hwm_kb(w.proc.pid) if w.proc.poll() is None else None
        out["peak_rss_mb"] = kb / 1024 if kb is not None else None
    stop_process(w.proc)
    run.worker = None
    return out


async def _delete_topics(run: Run) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=run.settings.bootstrap, **run.security())
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(run.prefix)]
        if mine:
            await admin.delete_topics(mine, timeout_ms=30_000)
        return len(mine)
    finally:
        await admin.close()


async def run_bench(settings: Any, *, phases: Sequence[str], events: int = 200_000,
                    customers: int = 100_000, responses: int = 20_000, seed: int = 7,
                    latency_s: float = 30.0, measure_rss: bool = True, keep: bool = False,
                    echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the chosen phases in order on one data set; returns every phase's dict, the ratios
    and `errors` (phase → why it could not measure)."""
    import dataclasses
    import platform

    results: dict[str, Any] = {
        "config": {"phases": list(phases), "events": events, "customers": customers,
                   "windows_responses": responses, "seed": seed, "latency_seconds": latency_s},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(),
                    "core": "compiled" if core_compiled() else "python"},
    }
    errors: dict[str, str] = {}
    if "windows" in phases:
        results["windows"] = windows_phase(responses, seed)
    kafka = [p for p in phases if p != "windows"]
    if kafka:
        from cxstream.tools.broker import LocalBroker
        from cxstream.config.settings import Settings

        env = dict(os.environ)
        started_broker = None
        if "CXSTREAM_BROKER" not in os.environ:
            b = LocalBroker(port=9092, data_dir=settings.data_dir / "kafka")
            res = await asyncio.to_thread(b.start, 90.0, echo)
            echo(f"broker {'already running' if res.already_running else 'started'} at {res.bootstrap}")
            started_broker = None if res.already_running else b
            env["CXSTREAM_BROKER"] = res.bootstrap
            settings = Settings.from_env(env)
        prefix = f"{settings.topic_prefix}bench-{uuid.uuid4().hex[:8]}."
        workdir = Path(tempfile.mkdtemp(prefix="cxstream-bench-"))
        run = Run(settings=dataclasses.replace(settings, topic_prefix=prefix), env=env,
                  workdir=workdir, events=events, customers=customers, seed=seed)
        results["config"].update(broker=run.settings.bootstrap, topic_prefix=prefix)
        try:
            try:
                results["produce"] = await produce_inputs(run)
            except BenchError as exc:
                errors["produce"] = str(exc)
                kafka = []
            for name in kafka:
                try:
                    if name == "baseline":
                        results[name] = await baseline_phase(run)
                    elif name == "faust":
                        results[name] = await faust_phase(run)
                    elif name == "cxstream":
                        results[name] = await cxstream_phase(run, measure_resources=measure_rss)
                    elif name == "latency":
                        results[name] = await latency_phase(run, latency_s)
                except BenchError as exc:
                    errors[name] = str(exc)
            if isinstance(results.get("cxstream"), dict):
                results["cxstream"].update(finish_worker(run, measure_rss))
        finally:
            if run.worker is not None:
                stop_process(run.worker.proc)
            if not keep:
                try:
                    await _delete_topics(run)
                except Exception as exc:  # noqa: BLE001 - cleanup must not hide the results
                    echo(f"could not delete the bench topics {prefix}*: {type(exc).__name__}")
            if started_broker is not None:
                await asyncio.to_thread(started_broker.stop)
            if errors or keep:
                echo(f"bench files (logs) kept in {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    if errors:
        results["errors"] = errors
    return add_ratios(results)


if __name__ == "__main__":  # pragma: no cover - `python -m cxstream.tools.bench.run floor ...`
    if sys.argv[1:2] == ["floor"]:
        floor_main(*sys.argv[2:])
