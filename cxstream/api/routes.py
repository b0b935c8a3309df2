"""HTTP endpoints of a worker: health, readiness, metrics and the scores API.

Faust's own views (`/table/…`, `/router`, stats, graph, the index page) are switched off in
`cxstream.app`: only these endpoints are served.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust
from aiohttp import web as aiohttp_web
from faust.exceptions import ConsumerNotStarted
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cxstream import metrics
from cxstream.api import auth, collector
from cxstream.worker.processor import Processor
from cxstream.core.programs import Program, valid_id
from cxstream.core.programscores import (
    SegmentCounts,
    by_segment,
    describe,
    metric_view,
    program_view,
)
from cxstream.core.segments import parse_segment_key, split_program_key
from cxstream.core.timefmt import MAX_MS, MIN_MS, format_rfc3339, parse_rfc3339
from cxstream.core.trends import change, z_for
from cxstream.core.windows import floor_minute
from cxstream.api.queries import (
    QueryError,
    gather,
    local_partial,
    partial_to_json,
)
from cxstream.config.settings import Settings


def readiness(app: faust.App) -> tuple[bool, list[str]]:
    """Ready = joined the group, not rebalancing, tables recovered, broker reachable."""
    reasons: list[str] = []
    try:
        assigned = bool(app.consumer and app.consumer.assignment())
    except ConsumerNotStarted:  # the web server starts before the consumer
        assigned = False
    if not assigned:
        reasons.append("no partitions assigned yet")
    if app.rebalancing:
        reasons.append("rebalancing")
    if not app.tables.recovery.completed.is_set():
        reasons.append("recovering state from the changelog")
    # In touch with the broker: the consumer knows its group coordinator. aiokafka forgets it
    # as soon as a heartbeat or commit cannot reach it and finds it again once the broker is
    # back. Faust's consumer runs in its own thread (reading one attribute is safe); read
    # defensively, so a Faust/aiokafka that renames these cannot break /readyz.
    client = getattr(getattr(app.consumer, "_thread", None), "_consumer", None)
    coordinator = getattr(client, "_coordinator", None)
    if coordinator is not None and getattr(coordinator, "coordinator_id", 0) is None:
        reasons.append("not connected to the Kafka broker (group coordinator unknown)")
    return not reasons, reasons


def register(app: faust.App, settings: Settings, processor: Processor) -> None:
    """Declare cxstream's views on the Faust app's web server."""
    # Bearer-token check, JSON 401/404/405 and the JSON 500 safety net (see cxstream.api.auth).
    peer_token = auth.install(app.web.web_app, settings)
    spans = {w.ms for w in settings.windows}

    def err(view: View, exc: QueryError) -> Response:
        return view.json(exc.body(), status=exc.status)

    def window_and_as_of(request: Request) -> tuple[Any, int]:
        name = request.query.get("window", "7d")
        window = settings.window(name)
        if window is None:
            raise QueryError(400, "unknown_window", f"unknown window {name!r}",
                             windows=[w.name for w in settings.windows])
        raw = request.query.get("as_of")
        if raw is None:
            as_of = floor_minute(int(time.time() * 1000))
        else:
            parsed = parse_rfc3339(raw)
            if parsed is None:
                raise QueryError(400, "bad_as_of",
                                 "as_of must be an RFC 3339 date-time with offset, e.g. 2026-10-31T00:00:00Z")
            as_of = floor_minute(parsed)
        return window, as_of

    def check_retention(partial: Any, start: int, window: Any) -> None:
        cutoffs = [st - settings.horizon_ms for st in partial.stream_time.values() if st is not None]
        if cutoffs and start < max(cutoffs):
            earliest = floor_minute(max(cutoffs) + 59_999) + window.ms
            raise QueryError(422, "out_of_retention",
                             f"the {window.name} window as of this instant reaches before the data "
                             f"kept (largest window + grace); earliest as_of for it: "
                             f"{format_rfc3339(earliest)}", earliest_as_of=format_rfc3339(earliest))

    def wanted_program(request: Request) -> Program | None:
        """The program `?program=` names (None: no parameter, the metric-level view)."""
        name = request.query.get("program")
        if name is None:
            return None
        program = processor.programs.get(name)
        if program is None:
            shown = repr(name) if valid_id(name) else "of that id"  # ids echo safely
            raise QueryError(404, "unknown_program",
                             f"no program {shown} in this worker's registry "
                             "(CXSTREAM_SURVEYS): GET /programs lists the programs")
        return program

    def render(segment: str, window: Any, as_of: int, group: SegmentCounts,
               program: Program | None) -> dict[str, Any]:
        """A segment's document: the metric-level view, or `program`'s own scores."""
        body = (metric_view(group, processor.programs, min_responses=settings.min_responses)
                if program is None else
                program_view(group, program, min_responses=settings.min_responses))
        return {"segment": segment, "window": window.name, "as_of": format_rfc3339(as_of),
                **body}

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/readyz")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            ok, reasons = readiness(app)
            owned = sorted({tp.partition for tp in app.assignor.assigned_actives()
                            if tp.topic == processor.topics.surveys})
            return self.json({"ready": ok, "reasons": reasons, "partitions": owned},
                             status=200 if ok else 503)

    installed = collector.install(app, processor, ready=lambda: readiness(app)[0])
    one_scrape = asyncio.Lock()  # what `prepare` computed is for this scrape's collect

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            async with one_scrape:
                await installed.prepare()
                body = generate_latest(metrics.REGISTRY)
            # aiohttp refuses a charset inside content_type=, so set the header as-is.
            return aiohttp_web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/scores")
    class AllScores(View):
        async def get(self, request: Request) -> Response:
            try:
                window, as_of = window_and_as_of(request)
                program = wanted_program(request)
                start = as_of - window.ms
                partial = await gather(app, processor, None, start, as_of, token=peer_token)
                check_retention(partial, start, window)
            except QueryError as exc:
                return err(self, exc)
            # Per program only now: once every worker's counts are summed.
            groups = by_segment(partial.counts)
            return self.json({
                "window": window.name, "as_of": format_rfc3339(as_of),
                **({} if program is None else {"program": program.id}),
                "segments": [render(seg, window, as_of, group, program)
                             for seg, group in groups.items()],
            })

    @app.page("/scores/{segment}")
    class SegmentScores(View):
        async def get(self, request: Request, segment: str) -> Response:
            try:
                try:
                    seg = parse_segment_key(segment)
                except ValueError as exc:
                    raise QueryError(400, "bad_segment", str(exc)) from None
                window, as_of = window_and_as_of(request)
                program = wanted_program(request)
                start = as_of - window.ms
                partial = await gather(app, processor, [seg], start, as_of, token=peer_token)
                groups = by_segment(partial.counts)  # the segment's keys, every worker's summed
                if seg not in groups:
                    raise QueryError(404, "unknown_segment",
                                     f"no responses for segment {seg!r} within retention")
                check_retention(partial, start, window)
            except QueryError as exc:
                return err(self, exc)
            return self.json(render(seg, window, as_of, groups[seg], program))

    @app.page("/trends")
    class Trends(View):
        async def get(self, request: Request) -> Response:
            """Every segment's NPS in the window against the window before it: the change,
            its interval at CXSTREAM_TREND_LEVEL and whether it is significant
            (`cxstream.core.trends`), from every worker's counts summed."""
            try:
                window, as_of = window_and_as_of(request)
                start, before = as_of - window.ms, as_of - 2 * window.ms
                now = await gather(app, processor, None, start, as_of, token=peer_token)
                then = await gather(app, processor, None, before, start, token=peer_token)
                check_retention(then, before, window)
            except QueryError as exc:
                return err(self, exc)
            z = z_for(settings.trend_level)
            rows = []
            for segment in sorted(set(now.counts) & set(then.counts)):
                if split_program_key(segment)[0] is not None:
                    continue  # the trend is of the metric-level NPS: the segment's own key
                found = change(now.counts[segment], then.counts[segment], z=z,
                               min_responses=settings.trend_min_responses)
                if found is not None:
                    rows.append({"segment": segment, "nps": found.nps,
                                 "responses": found.responses,
                                 "previous_nps": found.previous_nps,
                                 "previous_responses": found.previous_responses,
                                 "change": found.change, "interval": [found.low, found.high],
                                 "significant": found.significant})
            return self.json({"window": window.name, "as_of": format_rfc3339(as_of),
                              "previous_start": format_rfc3339(before),
                              "level": settings.trend_level,
                              "min_responses": settings.trend_min_responses,
                              "segments": rows})

    @app.page("/programs")
    class Programs(View):
        async def get(self, request: Request) -> Response:
            return self.json({"programs": [describe(p) for p in processor.programs]})

    @app.page("/_cx/partials")
    class Partials(View):
        """Internal: this worker's partial counts, asked by a peer answering a query."""

        async def get(self, request: Request) -> Response:
            q = request.query
            try:
                parts = [int(p) for p in q["partitions"].split(",") if p]
                start, end = int(q["start"]), int(q["end"])
            except (KeyError, ValueError):
                return self.json({"error": "bad_request",
                                  "message": "partitions, start and end are required"}, status=400)
            # Only what a query of this group can ask: a configured window's span, inside the
            # timestamps the core can format, of partitions that exist. Anything else costs
            # time and memory in proportion to the range, and no peer asks for it.
            if (end - start not in spans or not MIN_MS <= start <= end <= MAX_MS
                    or not all(0 <= p < settings.partitions for p in parts)):
                return self.json({"error": "bad_request",
                                  "message": "start and end must span one of the configured "
                                             "windows, of partitions that exist"}, status=400)
            segments = q["segments"].split("\n") if "segments" in q else None
            active = {tp.partition for tp in app.assignor.assigned_actives()}
            if not set(parts) <= active:
                return self.json({"error": "not_owner", "message": "partitions moved; retry"},
                                 status=409)
            return self.json(partial_to_json(local_partial(processor, parts, segments, start, end)))
