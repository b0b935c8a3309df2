"""`cxstream demo`: broker (if none is configured), a worker, simulated traffic, live output.

Everything it starts it also stops: on `--duration` expiry, Ctrl+C or an error, the worker
gets SIGTERM (then SIGKILL) and a broker started by the demo is stopped.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import aiohttp
import orjson

from cxstream.broker import LocalBroker
from cxstream.render import alert_line, score_table
from cxstream.settings import Settings
from cxstream.simulate_run import simulate
from cxstream.tail import read_topic
from cxstream.topics import Topics

Echo = Callable[[str], None]


async def wait_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None,
                    log: Path | None = None) -> None:
    """Wait until `url` answers 200 (the worker's /readyz)."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"the worker exited with code {proc.returncode}; see {log}")
            try:
                async with s.get(url) as resp:
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError(f"{url} was not ready within {timeout_s:.0f}s; see {log}")


def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "cxstream", "worker"], env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _print_alerts(settings: Settings, echo: Echo, seen: list[int]) -> None:
    async for rec in read_topic(settings.bootstrap, Topics(settings.topic_prefix).alerts,
                                from_beginning=False, follow=True):
        seen[0] += 1
        echo("ALERT " + alert_line(orjson.loads(rec.value)))


async def _print_scores(url: str, echo: Echo) -> int:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        async with s.get(f"{url}/scores", params={"window": "1h"}) as resp:
            body = await resp.json()
    rows = body.get("segments", [])
    echo(score_table(rows, window=body["window"], as_of=body["as_of"]))
    return len(rows)


async def demo(settings: Settings, *, duration: float, rate: float, customers: int, seed: int,
               echo: Echo) -> int:
    """Run the demo; returns the process exit code."""
    started_broker: LocalBroker | None = None
    env = dict(os.environ)
    if "CXSTREAM_BROKER" not in os.environ:
        b = LocalBroker(port=9092, data_dir=settings.data_dir / "kafka")
        result = await asyncio.to_thread(b.start, 90.0, echo)
        echo(f"broker {'already running' if result.already_running else 'started'} at "
             f"{result.bootstrap}; log {result.log_path}")
        if not result.already_running:
            started_broker = b
        env["CXSTREAM_BROKER"] = result.bootstrap
        settings = Settings.from_env(env)
    log = settings.data_dir / "demo-worker.log"
    proc = start_worker(env, log)
    url = f"http://{settings.web_host}:{settings.web_port}"
    alerts_seen = [0]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        echo(f"worker starting (pid {proc.pid}, log {log}) ...")
        await wait_http(f"{url}/readyz", 180, proc, log)
        echo(f"worker ready: {url}/scores   (Ctrl+C to stop)")
        printer = asyncio.create_task(_print_alerts(settings, echo, alerts_seen))
        sim = asyncio.create_task(simulate(settings, seed=seed, customers=customers, rate=rate,
                                           duration=duration, backfill_days=None, output=None,
                                           stop=stop))
        last = loop.time()
        while not sim.done():
            await asyncio.sleep(0.5)
            if loop.time() - last >= 20:
                last = loop.time()
                await _print_scores(url, echo)
        echo(sim.result())
        await asyncio.sleep(3)  # let the last events through before the final table
        segments = await _print_scores(url, echo)
        printer.cancel()
        echo(f"{alerts_seen[0]} alerts, {segments} segments with scores")
        return 0 if duration <= 0 or (alerts_seen[0] and segments) else 1
    finally:
        stop_process(proc)
        if started_broker is not None:
            await asyncio.to_thread(started_broker.stop)
            echo("broker stopped")
