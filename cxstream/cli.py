"""The `cxstream` command line: thin wrappers that parse options and print.

Every command reads the same settings (`CXSTREAM_*`, see docs/operating/configuration.md) and
fails with a message that says what to do, never with a traceback, for the errors users can fix.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import sys
from pathlib import Path
from typing import Any, Callable, TypeVar

import click
import orjson

from cxstream.config.settings import Settings, SettingsError
from cxstream.kafka.topics import INPUTS, Topics

F = TypeVar("F", bound=Callable[..., Any])


def friendly(fn: F) -> F:
    """Turn the errors a user can fix into one clear line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from cxstream.kafka.admin import TopicError
        from cxstream.tools.broker import BrokerError
        from cxstream.notify.routing import NotifyConfigError

        try:
            return fn(*args, **kwargs)
        except (SettingsError, TopicError, BrokerError, NotifyConfigError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def settings() -> Settings:
    return Settings.from_env()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cxstream")
def main() -> None:
    """cxstream: rolling NPS/CSAT/CES per segment and detractor alerts from Kafka.

    Configuration comes from CXSTREAM_* environment variables (see docs/operating/configuration.md).
    """


# -- worker -----------------------------------------------------------------------------------
@main.command()
@friendly
def worker() -> None:
    """Run the stream processor (HTTP API and /healthz, /readyz, /metrics on CXSTREAM_WEB_PORT)."""
    import faust

    from cxstream.worker import gc_tuning
    from cxstream.kafka.admin import ensure_topics
    from cxstream.app import create_app

    cfg = settings()
    loop = asyncio.new_event_loop()
    try:
        counts = loop.run_until_complete(ensure_topics(cfg, internal=True))
    finally:
        loop.close()
    asyncio.set_event_loop(asyncio.new_event_loop())
    click.echo(f"cxstream worker {cfg.group_id}: broker {cfg.bootstrap}, "
               f"{counts.get(Topics(cfg.topic_prefix).surveys)} partitions, "
               f"API on http://{cfg.web_bind}:{cfg.web_port}", err=True)
    app = create_app(cfg)
    gc_tuning.tune()
    gc.freeze()  # what start-up created lives for the whole run: never scan it
    w = faust.Worker(app, loglevel=cfg.log_level, quiet=True)
    # Faust's terminal spinner sets the root logger to DEBUG when the level is warn or above
    # (it spins on every record), so every debug call in Faust and aiokafka would build a
    # record only to drop it, a cost on the hot path for nothing (figures: docs/performance.md).
    w.spinner = None
    w.execute_from_commandline()


# -- broker -----------------------------------------------------------------------------------
@main.group()
def broker() -> None:
    """Provision and run a local single-node Kafka (KRaft) for development and tests."""


def _local(port: int | None, data_dir: Path | None) -> Any:
    from cxstream.tools.broker import LocalBroker

    cfg = settings()
    return LocalBroker(port=port or 9092, data_dir=data_dir or cfg.data_dir / "kafka")


_port_opt = click.option("--port", type=int, default=None, help="Listener port (default 9092).")
_dir_opt = click.option("--data-dir", type=click.Path(path_type=Path), default=None,
                        help="Broker data and logs (default: $CXSTREAM_DATA_DIR/kafka).")


@broker.command("start")
@_port_opt
@_dir_opt
@friendly
def broker_start(port: int | None, data_dir: Path | None) -> None:
    """Download Kafka's jars (first time), format storage, start, wait until ready."""
    b = _local(port, data_dir)
    result = b.start(progress=lambda line: click.echo(line, err=True))
    state = "already running" if result.already_running else "started"
    click.echo(f"broker {state}: {result.bootstrap} (pid {result.pid}); log: {result.log_path}")


@broker.command("stop")
@_port_opt
@_dir_opt
@friendly
def broker_stop(port: int | None, data_dir: Path | None) -> None:
    """Stop the local broker started from this data dir."""
    stopped = _local(port, data_dir).stop()
    click.echo("broker stopped" if stopped else "no broker was running")


@broker.command("status")
@_port_opt
@_dir_opt
@friendly
def broker_status(port: int | None, data_dir: Path | None) -> None:
    """Show whether the local broker runs, its pid, port and log."""
    st = _local(port, data_dir).status()
    if st.running:
        click.echo(f"running: pid {st.pid}, 127.0.0.1:{st.port}, log {st.log_path}")
    else:
        click.echo(f"not running (data dir {st.data_dir})")
        sys.exit(1)


# -- produce ----------------------------------------------------------------------------------
@main.command()
@click.argument("topic", type=click.Choice(INPUTS))
@click.argument("file", type=click.File("rb"))
@click.option("--dry-run", is_flag=True, help="Validate locally and report bad lines; send nothing.")
@friendly
def produce(topic: str, file: Any, dry_run: bool) -> None:
    """Send JSON Lines from FILE (or - for stdin) to an input topic, keyed by customer_id."""
    from cxstream.tools import produce

    if dry_run:
        report = produce.check(settings(), topic, file)
        for number, code, reason in report.bad:
            click.echo(f"line {number}: {code}: {reason}")
        click.echo(f"{report.sent} valid, {len(report.bad)} invalid (nothing sent)", err=True)
        sys.exit(1 if report.bad else 0)
    total = None
    if file is not sys.stdin.buffer and hasattr(file, "name") and os.path.isfile(file.name):
        with open(file.name, "rb") as counting:
            total = sum(1 for line in counting if line.strip())
    report = run(produce.produce(settings(), topic, file, total=total))
    name = Topics(settings().topic_prefix).input(topic)
    extra = f" ({report.unkeyed} without a customer_id key)" if report.unkeyed else ""
    click.echo(f"sent {report.sent} messages to {name}{extra}", err=True)


# -- simulate ---------------------------------------------------------------------------------
@main.command()
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed.")
@click.option("--customers", type=int, default=500, show_default=True)
@click.option("--rate", type=float, default=50.0, show_default=True, help="Events per second.")
@click.option("--duration", type=float, default=60.0, show_default=True,
              help="Seconds to run (0: until interrupted).")
@click.option("--backfill-days", type=float, default=None,
              help="Instead of live events: spread duration×rate events over the last N days, "
                   "sent as fast as possible.")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write surveys/interactions/customers .jsonl files here instead of sending.")
@friendly
def simulate(seed: int, customers: int, rate: float, duration: float,
             backfill_days: float | None, output: Path | None) -> None:
    """Generate realistic customers, journeys and survey responses (some customers sour and recover)."""
    from cxstream.tools.simulate import simulate as run_simulation

    summary = run(run_simulation(settings(), seed=seed, customers=customers, rate=rate,
                                 duration=duration, backfill_days=backfill_days, output=output))
    click.echo(summary, err=True)


# -- reading topics ---------------------------------------------------------------------------
@main.command()
@click.option("--follow", "-f", is_flag=True, help="Keep printing new dead letters.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON records.")
@friendly
def deadletters(follow: bool, as_json: bool) -> None:
    """Print dead-lettered input with its error code, reason and source position."""
    from cxstream.kafka.security import client_kwargs
    from cxstream.tools.render import printable
    from cxstream.tools.tail import read_topic

    cfg = settings()

    async def go() -> int:
        n = 0
        async for rec in read_topic(cfg.bootstrap, Topics(cfg.topic_prefix).deadletter, follow=follow,
                                    security=client_kwargs(cfg)):
            n += 1
            if as_json:
                click.echo(printable(rec.value.decode("utf-8", "replace")))
                continue
            try:
                d = orjson.loads(rec.value)
                click.echo(printable(f"{d['dead_lettered_at']}  {d['source_topic']}"
                                     f"[{d['source_partition']}]@{d['source_offset']}  "
                                     f"{d['error_code']}: {d['reason']}"))
            except (orjson.JSONDecodeError, KeyError, TypeError):
                click.echo(f"(unreadable dead letter at offset {rec.offset})")
        return n

    n = run(go())
    click.echo(f"{n} dead letters", err=True)


def _api_get(url: str | None, path: str, params: dict[str, str]) -> Any:
    """GET `path` of a worker's API (`url`, default http://CXSTREAM_WEB_HOST:CXSTREAM_WEB_PORT,
    with the API token when one is configured); the JSON body. Exits 2 when no worker
    answers, 1 with the API's message when it refuses, each in one line."""
    import aiohttp

    from cxstream.api.auth import auth_headers, resolve_token

    cfg = settings()
    headers = auth_headers(resolve_token(cfg))
    base = url or f"http://{cfg.web_host}:{cfg.web_port}"

    async def fetch() -> tuple[int, Any]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
            async with s.get(base + path, params=params, headers=headers) as resp:
                return resp.status, await resp.json(content_type=None)

    try:
        status, body = run(fetch())
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        click.echo(f"error: no worker answered at {base} ({type(exc).__name__}); start one with "
                   "`cxstream worker` or pass --url", err=True)
        sys.exit(2)
    if status != 200:
        message = body.get("message", body) if isinstance(body, dict) else body
        if status == 401:
            message = f"{message} (set CXSTREAM_API_TOKEN or CXSTREAM_API_TOKEN_FILE to the workers' token)"
        click.echo(f"error: {message}", err=True)
        sys.exit(1)
    return body


@main.command()
@click.option("--segment", default=None, help="One segment, e.g. plan:pro (default: all known).")
@click.option("--window", default="7d", show_default=True, help="One of CXSTREAM_WINDOWS.")
@click.option("--as-of", default=None, help="RFC 3339 instant (default: now), floored to the minute.")
@click.option("--program", default=None,
              help="One survey program's own scores, e.g. rnps (default: each metric summed "
                   "over its programs; GET /programs lists them).")
@click.option("--url", default=None, help="Worker API (default: http://CXSTREAM_WEB_HOST:CXSTREAM_WEB_PORT).")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@friendly
def scores(segment: str | None, window: str, as_of: str | None, program: str | None,
           url: str | None, as_json: bool) -> None:
    """Print NPS, CSAT and CES per segment from a worker's API (one survey program's with
    --program)."""
    from cxstream.tools.render import score_table

    path = f"/scores/{segment}" if segment else "/scores"
    params = {"window": window, **({"as_of": as_of} if as_of else {}),
              **({"program": program} if program is not None else {})}
    body = _api_get(url, path, params)
    if as_json:
        click.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return
    rows = [body] if segment else body["segments"]
    if program is None:
        click.echo(score_table(rows, window=body["window"], as_of=body["as_of"]))
        if any(r["ces"].get("mean_withheld") for r in rows):
            click.echo("CES mean -: CES programs of different scales are summed there; "
                       "see each with --program ID")
        return
    click.echo(_program_scores(program, rows, window=body["window"], as_of=body["as_of"]))


@main.command()
@click.option("--window", default="7d", show_default=True,
              help="One of CXSTREAM_WINDOWS, compared with the window before it.")
@click.option("--as-of", default=None, help="RFC 3339 instant (default: now), floored to the minute.")
@click.option("--url", default=None, help="Worker API (default: http://CXSTREAM_WEB_HOST:CXSTREAM_WEB_PORT).")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@friendly
def trends(window: str, as_of: str | None, url: str | None, as_json: bool) -> None:
    """Print each segment's NPS change against the window before it, with its interval and
    whether it is significant (CXSTREAM_TREND_LEVEL), from a worker's API."""
    from cxstream.tools.render import trend_table

    body = _api_get(url, "/trends", {"window": window, **({"as_of": as_of} if as_of else {})})
    if as_json:
        click.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(trend_table(body))


#: A metric's object as a program of another metric has it in the score table: no answers.
_NO_ANSWERS = {"responses": 0, "score": None, "margin_of_error": None, "mean": None,
               "high_effort_share": None, "low_sample": False}


def _program_scores(program: str, rows: list[dict[str, Any]], *, window: str, as_of: str
                    ) -> str:
    """The score table of one program's documents (`GET /scores?program=`): its metric's
    columns filled, the others empty; a line naming its scale and target, and with a target
    the segments whose score misses it."""
    from cxstream.tools.render import printable, score_table

    metrics = ("nps", "csat", "ces")
    full = [{**{m: _NO_ANSWERS for m in metrics}, **r} for r in rows]
    first = rows[0] if rows else {}
    metric = next((m for m in metrics if m in first), "")
    scale = first.get("scale") or []
    target = first.get("target")
    head = printable(f"program {program}" + (f": {metric} on {scale[0]}–{scale[1]}"
                                             if len(scale) == 2 else "")
                     + (f", target {target:g}" if target is not None else ""))
    lines = [head, score_table(full, window=window, as_of=as_of)]
    if target is not None:
        missed = [printable(r["segment"]) for r in rows if r.get("meets_target") is False]
        lines.append(f"below target {target:g}: {', '.join(missed)}" if missed
                     else f"no segment below target {target:g}")
    return "\n".join(lines)


@main.command()
@click.option("--follow", "-f", is_flag=True, help="Keep printing new alerts.")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest alert kept (default "
              "with no --follow); with --follow alone, only new alerts are printed.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document per line.")
@friendly
def alerts(follow: bool, from_beginning: bool, as_json: bool) -> None:
    """Print the alerts of the alert topic: customers turning (detractor / recovered) and
    segments crossing their targets (below_target / back_on_target)."""
    from cxstream.kafka.security import client_kwargs
    from cxstream.tools.render import alert_line, printable
    from cxstream.tools.tail import read_topic

    cfg = settings()

    async def go() -> int:
        n = 0
        start = from_beginning or not follow
        async for rec in read_topic(cfg.bootstrap, Topics(cfg.topic_prefix).alerts,
                                    from_beginning=start, follow=follow,
                                    security=client_kwargs(cfg)):
            n += 1
            click.echo(printable(rec.value.decode("utf-8", "replace")) if as_json
                       else alert_line(orjson.loads(rec.value)))
        return n

    n = run(go())
    click.echo(f"{n} alerts", err=True)


@main.command()
@click.option("--events", type=int, default=200_000, show_default=True,
              help="Interactions and survey responses produced for the Kafka phases.")
@click.option("--customers", type=int, default=100_000, show_default=True,
              help="Simulated customers the events are spread over.")
@click.option("--phases", default="windows,baseline,faust,cxstream,latency", show_default=True,
              help="Comma list of: windows, baseline, faust, cxstream, latency (needs cxstream).")
@click.option("--responses", type=int, default=20_000, show_default=True,
              help="Responses of the pure `windows` phase.")
@click.option("--latency-seconds", type=float, default=30.0, show_default=True,
              help="How long the latency phase offers events (at half the cxstream rate).")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--skip-rss", is_flag=True, help="Skip the worker's peak RSS and state size on disk.")
@click.option("--keep", is_flag=True, help="Keep the bench topics and the logs (default: deleted).")
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the results as JSON to this file.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of a table.")
@friendly
def bench(events: int, customers: int, phases: str, responses: int, latency_seconds: float,
          seed: int, skip_rss: bool, keep: bool, json_out: Path | None, as_json: bool) -> None:
    """Measure throughput against a plain consumer (ratios), alert latency, memory and state
    size on one data set, on the configured broker (or a local one it starts)."""
    from cxstream.tools.bench.report import parse_phases, render_table
    from cxstream.tools.bench.run import run_bench

    try:
        chosen = parse_phases(phases)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--phases") from None
    if events < 1 or customers < 1 or responses < 1:
        raise click.BadParameter("--events, --customers and --responses must be positive")
    r = run(run_bench(settings(), phases=chosen, events=events, customers=customers,
                      responses=responses, seed=seed, latency_s=latency_seconds,
                      measure_rss=not skip_rss, keep=keep,
                      echo=lambda line: click.echo(line, err=True)))
    text = orjson.dumps(r, option=orjson.OPT_INDENT_2).decode()
    if json_out is not None:
        json_out.write_text(text + "\n")
    click.echo(text if as_json else render_table(r))
    if r.get("errors"):
        sys.exit(1)


@main.command()
@click.option("--duration", type=float, default=0, show_default=True,
              help="Seconds of simulated traffic; 0 runs until Ctrl+C.")
@click.option("--rate", type=float, default=50.0, show_default=True, help="Events per second.")
@click.option("--customers", type=int, default=300, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@friendly
def demo(duration: float, rate: float, customers: int, seed: int) -> None:
    """Start a local broker (unless CXSTREAM_BROKER is set), a worker and simulated traffic;
    print alerts as they happen and the score table every 20 s."""
    from cxstream.tools.demo import demo as run_demo

    code = run(run_demo(settings(), duration=duration, rate=rate, customers=customers,
                        seed=seed, echo=lambda line: click.echo(line)))
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
