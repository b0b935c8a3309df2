"""The bench's throughput phases on Kafka, each timed on the same produced inputs: the
`baseline` (a plain aiokafka consumer that only fetches and decodes), the `faust` floor (a
do-nothing Faust agent in a subprocess, `floor_main`) and `cxstream` (a real worker
subprocess, started here and kept running for the latency phase, then stopped by
`finish_worker` with its peak RSS).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from cxstream.tools.bench.base import (BenchError, Run, _committed_done, _events_total,
                                       _free_port, _rate, _ready, _rocksdb_available,
                                       _wait_until, _Worker)
from cxstream.tools.bench.report import compacted_state_bytes, dir_bytes, vm_hwm_kb
from cxstream.tools.demo import stop_process
from cxstream.tools.progress import Progress


#: Passes of the baseline read; the median one is reported (a single pass is too short to
#: time reliably, see `baseline_phase`).
BASELINE_PASSES = 3


async def baseline_phase(run: Run) -> dict[str, Any]:
    """A plain aiokafka consumer: assign every input partition, fetch from the beginning and
    orjson-decode every value, until the end offsets measured after producing.

    Read `BASELINE_PASSES` times (each pass timed as `_read_to_end` says), and the median
    pass reported: a pass is short, so the first fetch's wait and this machine's noise
    weigh heavily on a single timing, and the baseline is the denominator of every ratio."""
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
    code = "import sys; from cxstream.tools.bench.phases import floor_main; floor_main(*sys.argv[1:])"
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
    group committed every input offset (`cxstream.tools.bench.run`'s docstring says why).
    The worker keeps running for the latency phase; `finish_worker` stops it."""
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
