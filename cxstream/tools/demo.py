"""`cxstream demo`: broker (if none is configured), a worker, simulated traffic, live output.

On a terminal the output is a rich live view (header with the URLs, scores per segment
refreshed from the worker's /scores API, the latest alerts; see cxstream.tools.render); elsewhere
(pipes, CI) plain lines: `ALERT ...` per alert, the score table every 20 s, a summary line.

Survey programs: unless `CXSTREAM_SURVEYS` is set (empty: the built-in surveys only), the
worker reads the demo's registry, `deploy/surveys.demo.toml` (a relationship NPS, a
transactional NPS, a CSAT 1–10, a CES 1–7), the simulator answers its programs, and both
views also show each program's scores in the segment `all` (`GET /scores/all?program=ID`):
score on its own scale, responses, target and whether the score meets it.

Target alerts: the worker checks the demo's window (1h) of every segment against its
programs' targets at every minute of event time (`DEMO_TARGETS`, unless the
`CXSTREAM_TARGET_*` variables are set), and the traffic starts with the `HISTORY_MINUTES`
whole minutes before now, sent at once: every input partition's stream time passes the first
minutes' ends plus the settle time within seconds, so their windows are decided at the start.
The registry's targets are met everywhere but in `touchpoint:billing`, whose transactional
NPS the simulator makes poor: one `below_target` alert, shown like the other alerts (and in
a panel of its own in the live view, where detractor alerts would soon push it out).

Everything it starts it also stops: on `--duration` expiry, Ctrl+C or an error, the worker
gets SIGTERM (then SIGKILL) and a broker started by the demo is stopped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

import aiohttp
import orjson

from cxstream.api.auth import auth_headers, resolve_token
from cxstream.config import surveys
from cxstream.core.programs import BUILTINS, Program, Registry
from cxstream.core.timefmt import format_rfc3339
from cxstream.core.windows import MINUTE, floor_minute
from cxstream.tools.broker import LocalBroker
from cxstream.tools.render import (
    DemoStatus,
    alert_line,
    alerts_renderable,
    demo_header,
    is_target_alert,
    score_table,
    scores_renderable,
)
from cxstream.tools.render_programs import Item, program_table, programs_renderable
from cxstream.config.settings import Settings
from cxstream.tools.simulate import simulate
from cxstream.tools.tail import read_topic
from cxstream.kafka.security import client_kwargs
from cxstream.kafka.topics import Topics

Echo = Callable[[str], None]
ALERTS_SHOWN = 10  # latest alerts in the live view
#: The demo's survey programs, unless CXSTREAM_SURVEYS is set. A file of the source tree: an
#: installed package without it runs the built-in surveys (and says so).
DEMO_SURVEYS = Path(__file__).resolve().parents[2] / "deploy" / "surveys.demo.toml"
#: The segment whose scores per program are shown.
PROGRAM_SEGMENT = "all"
#: Once the traffic stops, the longest wait for the worker to count every answer sent before
#: the final tables (it normally takes a moment).
SETTLE_S = 30.0
#: The target settings the demo's worker gets unless set: windows ending at every minute of
#: event time are decided once every partition is a minute past their end
#: (`CXSTREAM_TARGET_WINDOWS` is the demo's window).
DEMO_TARGETS = {"CXSTREAM_CHECK_EVERY": "1m", "CXSTREAM_CHECK_SETTLE": "1m"}
#: Whole minutes before now whose traffic is sent first, at once: the windows ending at the
#: first of them are decided at the start (each needs every partition past its end plus the
#: settle time). Three minutes: the window ending after the first minute already holds more
#: than CXSTREAM_MIN_RESPONSES tNPS answers of `touchpoint:billing` at the default rate.
HISTORY_MINUTES = 3
#: Target alerts kept in the live view's own panel.
TARGET_ALERTS_SHOWN = 5


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


async def _follow_alerts(settings: Settings, on_alert: Callable[[dict[str, Any]], None],
                         ready: asyncio.Event) -> None:
    """Every alert written from now on, to `on_alert`; `ready` is set once the reader stands
    at the end of the topic: the traffic starts only then, so that none of its alerts (the
    past's come at once) is missed."""
    topic = Topics(settings.topic_prefix).alerts
    async for rec in read_topic(settings.bootstrap, topic, from_beginning=False, follow=True,
                                security=client_kwargs(settings), positioned=ready):
        on_alert(orjson.loads(rec.value))
    raise RuntimeError(f"the alert topic {topic} has no partitions")


async def _start_following(settings: Settings, on_alert: Callable[[dict[str, Any]], None]
                           ) -> asyncio.Task[None]:
    """The task of `_follow_alerts`, once it is ready (its error, if it fails first)."""
    ready = asyncio.Event()
    task = asyncio.create_task(_follow_alerts(settings, on_alert, ready))
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiting}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if task.done():
        task.result()  # raises its error
    if not ready.is_set():
        task.cancel()
        raise RuntimeError("the alert topic could not be read within 60s")
    return task


async def _get(s: aiohttp.ClientSession, url: str, path: str, params: dict[str, str],
               token: str | None) -> dict[str, Any] | None:
    """The API's JSON answer to GET `path`; None for a segment without responses (404
    `unknown_segment`); RuntimeError for any other error, with the API's message."""
    async with s.get(f"{url}{path}", params=params, headers=auth_headers(token)) as resp:
        body = await resp.json(content_type=None)
        if resp.status == 404 and body.get("error") == "unknown_segment":
            return None
        if resp.status != 200:
            raise RuntimeError(f"{path} answered {resp.status}: "
                               f"{body.get('message') or body.get('error') or body}")
        return body


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))


def _params(window: str, **more: str) -> dict[str, str]:
    """The query of the demo's score requests: `window` as of the next whole minute. A window
    as of T covers the answers before T, and T is floored to the minute; as of now, the
    tables would leave out the answers of the current minute, a good part of a short demo."""
    as_of = floor_minute(int(time.time() * 1000)) + MINUTE
    return {"window": window, "as_of": format_rfc3339(as_of), **more}


async def _fetch_scores(url: str, window: str, token: str | None = None) -> dict[str, Any]:
    async with _session() as s:
        body = await _get(s, url, "/scores", _params(window), token)
        assert body is not None  # /scores names no segment
        return body


async def _fetch_programs(url: str, window: str, token: str | None,
                          programs: Sequence[Program]) -> list[Item]:
    """Each program's document of PROGRAM_SEGMENT (None: no answers there yet)."""
    async with _session() as s:
        return [(p, await _get(s, url, f"/scores/{PROGRAM_SEGMENT}",
                               _params(window, program=p.id), token)) for p in programs]


def _as_of(items: Sequence[Item], default: str) -> str:
    return next((doc["as_of"] for _, doc in items if doc is not None), default)


async def _print_scores(url: str, echo: Echo, token: str | None = None, window: str = "1h",
                        programs: Sequence[Program] = ()) -> int:
    """Print the score table, then (with `programs`) their scores; returns the number of
    segments with scores."""
    body = await _fetch_scores(url, window, token)
    rows = body.get("segments", [])
    echo(score_table(rows, window=body["window"], as_of=body["as_of"]))
    if programs:
        items = await _fetch_programs(url, window, token, programs)
        echo(program_table(items, segment=PROGRAM_SEGMENT, window=body["window"],
                           as_of=_as_of(items, body["as_of"])))
    return len(rows)


async def _settle(url: str, token: str | None, window: str, sent: int) -> str | None:
    """Wait (at most SETTLE_S) until the worker has counted, in `all`, as many answers as the
    simulator sent, so that the final tables show them all; None when it has, else a line
    saying how many it had."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_S
    counted = 0
    async with _session() as s:
        while True:
            try:
                body = await _get(s, url, "/scores/all", _params(window), token)
                counted = sum(body[m]["responses"] for m in ("nps", "csat", "ces")) if body else 0
            except (aiohttp.ClientError, asyncio.TimeoutError, RuntimeError, ValueError):
                pass  # the next try, or the final tables, will say
            if counted >= sent:
                return None
            if loop.time() >= deadline:
                return (f"the worker had counted {counted} of the {sent} answers sent after "
                        f"{SETTLE_S:.0f}s: the final tables show those (see the worker log)")
            await asyncio.sleep(0.5)


def _demo_programs(settings: Settings, env: dict[str, str], echo: Echo
                   ) -> tuple[Settings, Registry]:
    """The settings and registry of the demo: CXSTREAM_SURVEYS when set in `env`, else the
    demo's registry (then set in `env`, for the worker). Raises `SurveysError` for a registry
    that cannot be used, before anything is started."""
    if "CXSTREAM_SURVEYS" not in env:
        if DEMO_SURVEYS.is_file():
            env["CXSTREAM_SURVEYS"] = str(DEMO_SURVEYS)
            settings = dataclasses.replace(settings, surveys=str(DEMO_SURVEYS))
        else:
            echo(f"no demo survey registry at {DEMO_SURVEYS} (not a source checkout): the "
                 "built-in surveys only")
    registry = surveys.registry(settings.surveys, settings.max_programs)
    own = _shown(registry)
    if own:
        echo(f"survey programs: {', '.join(p.id for p in own)} "
             f"(CXSTREAM_SURVEYS={settings.surveys})")
    return settings, registry


def _demo_targets(settings: Settings, env: dict[str, str], registry: Registry, window: str,
                  echo: Echo) -> None:
    """Set `DEMO_TARGETS` (and the demo's window as the target window) in `env`, for the
    worker, where the variables are not set already; say what is checked."""
    for name, value in DEMO_TARGETS.items():
        env.setdefault(name, value)
    if settings.window(window) is not None:
        env.setdefault("CXSTREAM_TARGET_WINDOWS", window)
    targeted = [p for p in registry if p.target is not None]
    windows = env.get("CXSTREAM_TARGET_WINDOWS", "").strip()
    if targeted and windows:
        echo(f"target alerts: programs {', '.join(p.id for p in targeted)}; windows "
             f"{windows} of each segment, decided every {env['CXSTREAM_CHECK_EVERY']} of "
             f"event time, {env['CXSTREAM_CHECK_SETTLE']} after their end "
             "(CXSTREAM_TARGET_WINDOWS, _EVERY, _SETTLE)")


def _shown(registry: Registry) -> list[Program]:
    """The programs whose scores the demo shows: those the simulator answers, the registry's
    beyond the built-ins."""
    return [p for p in registry if p.id not in BUILTINS]


class _ProgressTap:
    """Stands in for sys.stderr while the live view is shown. The simulator reports progress on
    stderr (cxstream.tools.progress.Progress, label "simulate", unit "events"), redrawing one
    line with carriage returns, which would garble the view: that line is swallowed and its
    count kept (the header's "events sent"); anything else goes on to `inner` (rich prints it
    above the view). It claims to be a terminal so that Progress redraws, i.e. reports, often."""

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
    settings, programs = _demo_programs(settings, env, echo)
    _demo_targets(settings, env, programs, window, echo)
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
                         customers=customers, seed=seed, window=window, refresh_s=refresh_s,
                         programs=programs)
    finally:
        stop_process(proc)
        if started_broker is not None:
            await asyncio.to_thread(started_broker.stop)
            echo("broker stopped")


def _simulate(settings: Settings, stop: asyncio.Event, *, duration: float, rate: float,
              customers: int, seed: int, programs: Registry,
              counts: dict[str, int], echo: Echo | None = None) -> asyncio.Task[str]:
    """The simulator's task: `HISTORY_MINUTES` of the past at once (see the module
    docstring), then live traffic."""
    since = floor_minute(int(time.time() * 1000)) - HISTORY_MINUTES * MINUTE
    if echo is not None:
        echo(f"history: the traffic since {format_rfc3339(since)} ({HISTORY_MINUTES} whole "
             "minutes before this one) goes first, at once; then live traffic")
    return asyncio.create_task(simulate(settings, seed=seed, customers=customers, rate=rate,
                                        duration=duration, backfill_days=None, output=None,
                                        stop=stop, programs=programs, counts=counts,
                                        since=since))


def _exit_code(duration: float, alerts: int, segments: int) -> int:
    return 0 if duration <= 0 or (alerts and segments) else 1


def _summary(alerts: int, kinds: dict[str, int], segments: int) -> str:
    """The last line: alerts (those of each target kind), segments with scores."""
    targets = ", ".join(f"{kinds.get(k, 0)} {k}" for k in ("below_target", "back_on_target"))
    return f"{alerts} alerts ({targets}), {segments} segments with scores"


async def _run_plain(settings: Settings, url: str, token: str | None, stop: asyncio.Event, *,
                     echo: Echo, duration: float, rate: float, customers: int, seed: int,
                     window: str, refresh_s: float, programs: Registry) -> int:
    alerts_seen = [0]
    kinds: dict[str, int] = {}
    shown = _shown(programs)
    counts: dict[str, int] = {}

    def on_alert(doc: dict[str, Any]) -> None:
        alerts_seen[0] += 1
        kinds[str(doc.get("kind"))] = kinds.get(str(doc.get("kind")), 0) + 1
        echo("ALERT " + alert_line(doc))

    loop = asyncio.get_running_loop()
    printer = await _start_following(settings, on_alert)
    sim = _simulate(settings, stop, duration=duration, rate=rate, customers=customers, seed=seed,
                    programs=programs, counts=counts, echo=echo)
    try:
        last = loop.time()
        while not sim.done():
            await asyncio.sleep(0.5)
            if loop.time() - last >= refresh_s:
                last = loop.time()
                await _print_scores(url, echo, token, window, shown)
        echo(sim.result())
        note = await _settle(url, token, window, counts.get("surveys", 0))
        if note:
            echo(note)
        segments = await _print_scores(url, echo, token, window, shown)
    finally:
        printer.cancel()
        sim.cancel()
    echo(_summary(alerts_seen[0], kinds, segments))
    return _exit_code(duration, alerts_seen[0], segments)


async def _run_live(settings: Settings, url: str, token: str | None, stop: asyncio.Event, *,
                    echo: Echo, duration: float, rate: float, customers: int, seed: int,
                    window: str, refresh_s: float, programs: Registry) -> int:
    from rich.console import Console, Group
    from rich.live import Live

    loop = asyncio.get_running_loop()
    recent: deque[dict[str, Any]] = deque(maxlen=ALERTS_SHOWN)
    targets: deque[dict[str, Any]] = deque(maxlen=TARGET_ALERTS_SHOWN)
    kinds: dict[str, int] = {}
    alerts = [0]
    scores: dict[str, Any] = {"body": None, "error": None, "programs": []}
    shown = _shown(programs)
    counts: dict[str, int] = {}

    def on_alert(doc: dict[str, Any]) -> None:
        alerts[0] += 1
        kinds[str(doc.get("kind"))] = kinds.get(str(doc.get("kind")), 0) + 1
        recent.append(doc)
        if is_target_alert(doc):
            targets.append(doc)

    async def refresh_scores() -> None:
        try:
            scores["body"] = await _fetch_scores(url, window, token)
            if shown:
                scores["programs"] = await _fetch_programs(url, window, token, shown)
            scores["error"] = None
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
        parts = [demo_header(st), scores_renderable(scores["body"])]
        if shown:
            items = scores["programs"] or [(p, None) for p in shown]
            parts.append(programs_renderable(items, segment=PROGRAM_SEGMENT, window=window,
                                             as_of=_as_of(items, "?")))
        if targets:
            parts.append(alerts_renderable(list(targets), limit=TARGET_ALERTS_SHOWN,
                                           title="target alerts, newest first"))
        return Group(*parts, alerts_renderable(list(recent), limit=ALERTS_SHOWN))

    console = Console()
    printer = await _start_following(settings, on_alert)
    refresher = asyncio.create_task(keep_refreshing())
    sim: asyncio.Task[str] | None = None
    note: str | None = None
    with Live(view("starting"), console=console, auto_refresh=False, transient=False) as lv:
        tap.inner = sys.stderr  # rich's proxy: other stderr output is printed above the view
        sys.stderr = tap  # type: ignore[assignment]
        try:
            sim = _simulate(settings, stop, duration=duration, rate=rate, customers=customers,
                            seed=seed, programs=programs, counts=counts, echo=console.print)
            while not sim.done():
                lv.update(view("stopping…" if stop.is_set() else "running"), refresh=True)
                await asyncio.sleep(0.5)
            summary = sim.result()
            refresher.cancel()
            lv.update(view("finishing: last events, final scores…"), refresh=True)
            note = await _settle(url, token, window, counts.get("surveys", 0))
            await refresh_scores()
            lv.update(view("finished"), refresh=True)
        finally:
            sys.stderr = tap.inner  # type: ignore[assignment]
            printer.cancel()
            refresher.cancel()
            if sim is not None:
                sim.cancel()
    echo(summary)
    if note:
        echo(note)
    segments = len((scores["body"] or {}).get("segments") or [])
    if scores["error"]:
        echo(f"last /scores refresh failed: {scores['error']}")
    echo(_summary(alerts[0], kinds, segments))
    return _exit_code(duration, alerts[0], segments)
