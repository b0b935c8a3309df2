"""`cxstream demo`: broker (if none is configured), a worker, simulated traffic, live output.

On a terminal the output is a rich live view (header with the URLs, scores per segment
refreshed from the worker's /scores API, the latest alerts; see cxstream.tools.render); elsewhere
(pipes, CI) plain lines: `ALERT ...` per alert, the score table every 20 s, a summary line.

Everything it starts it also stops: on `--duration` expiry, Ctrl+C or an error, the worker
gets SIGTERM (then SIGKILL) and a broker started by the demo is stopped.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, TextIO

import aiohttp
import orjson

from cxstream.api.auth import auth_headers, resolve_token
from cxstream.tools.broker import LocalBroker
from cxstream.tools.render import DemoStatus, alert_line, demo_view, score_table
from cxstream.config.settings import Settings
from cxstream.tools.simulate import simulate
from cxstream.kafka.security import client_kwargs
from cxstream.tools.tail import read_topic
from cxstream.kafka.topics import Topics

Echo = Callable[[str], None]
ALERTS_SHOWN = 10  # latest alerts in the live view


async def wait_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None,
                    log: Path | None = None, headers: dict[str, str] | None = None) -> None:
    """Wait until `url` answers 200 (the worker's /readyz)."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2),
                                     headers=headers or {}) as s:
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


async def _follow_alerts(settings: Settings, on_alert: Callable[[dict[str, Any]], None]) -> None:
    async for rec in read_topic(settings.bootstrap, Topics(settings.topic_prefix).alerts,
                                security=client_kwargs(settings),
                                from_beginning=False, follow=True):
        on_alert(orjson.loads(rec.value))


async def _fetch_scores(url: str, window: str, token: str | None = None) -> dict[str, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        async with s.get(f"{url}/scores", params={"window": window},
                         headers=auth_headers(token)) as resp:
            body = await resp.json(content_type=None)
            if resp.status != 200:
                raise RuntimeError(f"/scores answered {resp.status}: "
                                   f"{body.get('message') or body.get('error') or body}")
            return body


async def _print_scores(url: str, echo: Echo, token: str | None = None, window: str = "1h") -> int:
    body = await _fetch_scores(url, window, token)
    rows = body.get("segments", [])
    echo(score_table(rows, window=body["window"], as_of=body["as_of"]))
    return len(rows)


class _ProgressTap:
    """Stands in for sys.stderr while the live view is shown. The simulator reports progress on
    stderr (cxstream.tools.progress.Progress, label "simulate", unit "events"), redrawing one line with
    carriage returns, which would garble the view: that line is swallowed and its count kept
    (the header's "events sent"); anything else goes on to `inner` (rich prints it above the
    view). It claims to be a terminal so that Progress redraws, i.e. reports, often."""

    _COUNT = re.compile(r"\r?simulate\b.*?(\d+)(?:/\d+)? events")

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner
        self.sent = 0

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        m = self._COUNT.match(text)
        if m:
            self.sent = int(m[1])
            return len(text)
        return self.inner.write(text)

    def flush(self) -> None:
        self.inner.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, token: str | None,
                      stop: asyncio.Event) -> bool:
    """Wait for the worker's /readyz; False when Ctrl+C (or SIGTERM) came first."""
    ready = asyncio.create_task(wait_http(f"{url}/readyz", 180, proc, log, auth_headers(token)))
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({ready, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not ready.done():
        ready.cancel()
        return False
    ready.result()  # raises if the worker died or did not get ready in time
    return True


async def demo(settings: Settings, *, duration: float, rate: float, customers: int, seed: int,
               echo: Echo, window: str = "1h", live: bool | None = None,
               refresh_s: float | None = None) -> int:
    """Run the demo; returns the process exit code.

    `live`: show the rich live view (default: when stdout is a terminal); otherwise print plain
    lines: each alert as `ALERT ...`, the score table every `refresh_s` (default 20 s; the live
    view refreshes scores every 5 s) and a final summary line. `window`: of the score table.
    """
    live = sys.stdout.isatty() if live is None else live
    refresh_s = refresh_s if refresh_s is not None else (5.0 if live else 20.0)
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
    token = resolve_token(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        echo(f"worker starting (pid {proc.pid}, log {log}) ...")
        if not await _wait_ready(url, proc, log, token, stop):
            echo("interrupted before the worker was ready")
            return 130
        echo(f"worker ready: {url}/scores   (Ctrl+C to stop)")
        echo(f"scores API: {url}/scores?window={window}   metrics: {url}/metrics")
        run = _run_live if live else _run_plain
        return await run(settings, url, token, stop, echo=echo, duration=duration, rate=rate,
                         customers=customers, seed=seed, window=window, refresh_s=refresh_s)
    finally:
        stop_process(proc)
        if started_broker is not None:
            await asyncio.to_thread(started_broker.stop)
            echo("broker stopped")


def _simulate(settings: Settings, stop: asyncio.Event, *, duration: float, rate: float,
              customers: int, seed: int) -> asyncio.Task[str]:
    return asyncio.create_task(simulate(settings, seed=seed, customers=customers, rate=rate,
                                        duration=duration, backfill_days=None, output=None,
                                        stop=stop))


def _exit_code(duration: float, alerts: int, segments: int) -> int:
    return 0 if duration <= 0 or (alerts and segments) else 1


async def _run_plain(settings: Settings, url: str, token: str | None, stop: asyncio.Event, *,
                     echo: Echo, duration: float, rate: float, customers: int, seed: int,
                     window: str, refresh_s: float) -> int:
    alerts_seen = [0]

    def on_alert(doc: dict[str, Any]) -> None:
        alerts_seen[0] += 1
        echo("ALERT " + alert_line(doc))

    loop = asyncio.get_running_loop()
    printer = asyncio.create_task(_follow_alerts(settings, on_alert))
    sim = _simulate(settings, stop, duration=duration, rate=rate, customers=customers, seed=seed)
    try:
        last = loop.time()
        while not sim.done():
            await asyncio.sleep(0.5)
            if loop.time() - last >= refresh_s:
                last = loop.time()
                await _print_scores(url, echo, token, window)
        echo(sim.result())
        await asyncio.sleep(3)  # let the last events through before the final table
        segments = await _print_scores(url, echo, token, window)
    finally:
        printer.cancel()
        sim.cancel()
    echo(f"{alerts_seen[0]} alerts, {segments} segments with scores")
    return _exit_code(duration, alerts_seen[0], segments)


async def _run_live(settings: Settings, url: str, token: str | None, stop: asyncio.Event, *,
                    echo: Echo, duration: float, rate: float, customers: int, seed: int,
                    window: str, refresh_s: float) -> int:
    from rich.console import Console
    from rich.live import Live

    loop = asyncio.get_running_loop()
    recent: deque[dict[str, Any]] = deque(maxlen=ALERTS_SHOWN)
    alerts = [0]
    scores: dict[str, Any] = {"body": None, "error": None}

    def on_alert(doc: dict[str, Any]) -> None:
        alerts[0] += 1
        recent.append(doc)

    async def refresh_scores() -> None:
        try:
            scores["body"], scores["error"] = await _fetch_scores(url, window, token), None
        except Exception as exc:  # noqa: BLE001 - shown in the view; the next refresh retries
            scores["error"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    async def keep_refreshing() -> None:
        while True:
            await refresh_scores()
            await asyncio.sleep(refresh_s)

    started = loop.time()
    tap = _ProgressTap(sys.stderr)

    def view(state: str) -> Any:
        st = DemoStatus(broker=settings.bootstrap, worker_url=url, window=window,
                        elapsed_s=loop.time() - started, duration_s=duration,
                        events_sent=tap.sent, alerts=alerts[0], state=state,
                        error=scores["error"])
        return demo_view(st, scores["body"], list(recent), alert_limit=ALERTS_SHOWN)

    console = Console()
    printer = asyncio.create_task(_follow_alerts(settings, on_alert))
    refresher = asyncio.create_task(keep_refreshing())
    sim: asyncio.Task[str] | None = None
    with Live(view("starting"), console=console, auto_refresh=False, transient=False) as lv:
        tap.inner = sys.stderr  # rich's proxy: other stderr output is printed above the view
        sys.stderr = tap  # type: ignore[assignment]
        try:
            sim = _simulate(settings, stop, duration=duration, rate=rate, customers=customers,
                            seed=seed)
            while not sim.done():
                lv.update(view("stopping…" if stop.is_set() else "running"), refresh=True)
                await asyncio.sleep(0.5)
            summary = sim.result()
            refresher.cancel()
            lv.update(view("finishing: last events, final scores…"), refresh=True)
            await asyncio.sleep(3)  # let the last events through before the final table
            await refresh_scores()
            lv.update(view("finished"), refresh=True)
        finally:
            sys.stderr = tap.inner  # type: ignore[assignment]
            printer.cancel()
            refresher.cancel()
            if sim is not None:
                sim.cancel()
    echo(summary)
    segments = len((scores["body"] or {}).get("segments") or [])
    if scores["error"]:
        echo(f"last /scores refresh failed: {scores['error']}")
    echo(f"{alerts[0]} alerts, {segments} segments with scores")
    return _exit_code(duration, alerts[0], segments)
