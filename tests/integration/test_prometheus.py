"""Metrics through the real tools: `promtool check metrics` on a worker's real scrape, and a
real Prometheus (Debian's `prometheus`, on a free port) whose per-segment series equal what
the scores API reports, also once a second worker has taken half of the partitions.

A missing `prometheus`/`promtool` binary fails these tests with the fix (`make system-deps`):
they are never skipped.
"""

from __future__ import annotations

import math
import subprocess
import time
from typing import Any

import aiohttp
import orjson

from cxstream import __version__
from cxstream.core.timefmt import format_rfc3339
from cxstream.core.windows import MINUTE

from .harness import Worker, produce, wait_drained, wait_for
from .prom import PrometheusServer, require_binary

SEGMENT = "plan:prom"
NPS_SCORES = [9, 10, 9, 10, 9, 7, 8, 7, 0, 3, 6, 5]  # 5 promoters, 3 passives, 4 detractors
CSAT_SCORES = [5, 4, 2]
CES_SCORES = [2, 5]
WANT_NPS = 100 * (5 - 4) / 12


def responses() -> list[tuple[bytes, bytes]]:
    """One response per customer, 10+ minutes old: inside the 1h and 24h windows whatever
    whole minute `as_of` is floored to. Every detractor is a new customer's first answer, so
    each one raises a `detractor` alert."""
    base = int(time.time() * 1000) // MINUTE * MINUTE - 10 * MINUTE
    docs = [("nps", s) for s in NPS_SCORES] + [("csat", s) for s in CSAT_SCORES] + [
        ("ces", s) for s in CES_SCORES]
    out = []
    for i, (survey, score) in enumerate(docs):
        cid = f"prom-{i:03d}"
        out.append((cid.encode(), orjson.dumps({
            "event_id": f"e{i}", "customer_id": cid, "survey": survey, "score": score,
            "occurred_at": format_rfc3339(base - i * 1000), "segment": {"plan": "prom"}})))
    return out


def series(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
           **labels: str) -> float | None:
    return metrics.get((name, tuple(sorted(labels.items()))))


async def test_promtool_accepts_a_real_scrape(worker_factory) -> None:
    promtool = require_binary("promtool")
    w: Worker = worker_factory()
    w.start()
    await w.wait_ready()
    await produce(w.bootstrap, f"{w.prefix}surveys", responses())
    await wait_drained(w.bootstrap, f"{w.prefix}cxstream", [f"{w.prefix}surveys"])

    async def settled() -> dict[Any, float] | None:
        m = await w.metrics()
        lags = [v for (name, _), v in m.items() if name == "cxstream_consumer_lag_messages"]
        alerts = series(m, "cxstream_alert_delay_from_receipt_seconds_count", kind="detractor")
        done = (series(m, "cxstream_segment_nps_responses", segment=SEGMENT, window="24h") == 12
                and len(lags) == 12 and not any(lags) and alerts == 4)
        return m if done else None

    m = await wait_for(settled, 60, "segment gauges, zero lag on 3 topics x 4 partitions and "
                       "4 alert delays in the scrape")
    assert series(m, "cxstream_segment_nps", segment=SEGMENT, window="1h") == WANT_NPS
    assert series(m, "cxstream_segment_ces_effort_points", segment=SEGMENT, window="24h") == 7
    assert series(m, "cxstream_segment_ces_effort_mean", segment=SEGMENT, window="24h") == 3.5
    assert series(m, "cxstream_assigned_partitions") == 4
    assert series(m, "cxstream_recovery_in_progress") == 0
    assert series(m, "cxstream_recovery_remaining_messages") == 0
    assert series(m, "cxstream_alert_delay_from_event_seconds_count", kind="detractor") == 4
    assert [labels for (name, labels) in m if name == "cxstream_build_info"] == [
        (("version", __version__),)]
    assert not [k for k, v in m.items() if isinstance(v, float) and math.isnan(v)]

    status, text = await w.get("/metrics")
    assert status == 200
    check = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=60)
    problems = (check.stdout + check.stderr).decode().strip()
    assert check.returncode == 0 and not problems, f"promtool check metrics:\n{problems}"


async def test_prometheus_series_equal_the_scores_api(worker_factory, prometheus_factory) -> None:
    w1: Worker = worker_factory()
    w2: Worker = worker_factory()  # same group; started later
    prom: PrometheusServer = prometheus_factory([f"127.0.0.1:{w1.port}", f"127.0.0.1:{w2.port}"])
    w1.start()
    await prom.wait_ready()
    await w1.wait_ready()
    produced = await produce(w1.bootstrap, f"{w1.prefix}surveys", responses())
    nps_partitions = [p for p, _ in produced[:len(NPS_SCORES)]]

    async def api(w: Worker, window: str) -> dict[str, Any] | None:
        status, body = await w.get(f"/scores/{SEGMENT}", window=window)
        return body if status == 200 and body["nps"]["responses"] == 12 else None

    async def prom_value(promql: str) -> float | None:
        result = await prom.query(promql)
        return result[0]["value"] if len(result) == 1 else None

    async def prom_equals(promql: str, want: float) -> bool:
        got = await prom_value(promql)
        return got is not None and math.isclose(got, want, rel_tol=0, abs_tol=1e-9)

    # One worker: its derived gauge is the group's score, as the API reports it.
    for window in ("24h", "1h"):
        body = await wait_for(lambda: api(w1, window), 60, f"the API to count 12 NPS ({window})")
        assert math.isclose(body["nps"]["score"], WANT_NPS)
        sel = f'{{segment="{SEGMENT}",window="{window}"}}'
        checks = {
            f"cxstream_segment_nps{sel}": body["nps"]["score"],
            f"cxstream_segment_nps_responses{sel}": body["nps"]["responses"],
            f"cxstream_segment_nps_promoters{sel}": body["nps"]["promoters"],
            f"cxstream_segment_nps_detractors{sel}": body["nps"]["detractors"],
            f"cxstream_segment_csat_satisfied{sel}": body["csat"]["satisfied"],
            f"cxstream_segment_csat_percent{sel}": body["csat"]["score"],
            f"cxstream_segment_ces_effort_mean{sel}": body["ces"]["mean"],
        }
        for promql, want in checks.items():
            await wait_for(lambda: prom_equals(promql, want), 60,
                           f"Prometheus {promql} to equal the API's {want}")
    assert await prom_value(f'up{{instance="127.0.0.1:{w1.port}"}}') == 1

    # Two workers: each exports only the partitions it owns; the sums stay exact.
    w2.start()

    async def split() -> dict[str, list[int]] | None:
        owned = {}
        for w in (w1, w2):
            try:
                status, body = await w.get("/readyz")
            except aiohttp.ClientError:  # the second worker's web server is not up yet
                return None
            if status != 200 or not body["partitions"]:
                return None
            owned[f"127.0.0.1:{w.port}"] = body["partitions"]
        parts = [p for ps in owned.values() for p in ps]
        return owned if sorted(parts) == [0, 1, 2, 3] else None

    owned = await wait_for(split, 120, "both workers ready, owning disjoint halves")
    expected = {inst: sum(p in ps for p in nps_partitions) for inst, ps in owned.items()}

    async def per_instance() -> bool:
        result = await prom.query(
            f'cxstream_segment_nps_responses{{segment="{SEGMENT}",window="24h"}}')
        got = {r["metric"]["instance"]: r["value"] for r in result}
        return got == {inst: n for inst, n in expected.items() if n}

    await wait_for(per_instance, 60, f"per-worker NPS counts {expected} (owned: {owned})")
    total = (f'sum by (segment, window) '
             f'(cxstream_segment_nps_responses{{segment="{SEGMENT}",window="24h"}})')
    assert await prom_value(total) == 12
    assert await prom_value("sum(cxstream_assigned_partitions)") == 4
    body = await wait_for(lambda: api(w2, "24h"), 60, "the second worker's API to answer")
    assert math.isclose(body["nps"]["score"], WANT_NPS)
    score = (f'100 * (sum(cxstream_segment_nps_promoters{{segment="{SEGMENT}",window="24h"}})'
             f' - sum(cxstream_segment_nps_detractors{{segment="{SEGMENT}",window="24h"}}))'
             f' / sum(cxstream_segment_nps_responses{{segment="{SEGMENT}",window="24h"}})')
    assert await prom_equals(score, body["nps"]["score"])
