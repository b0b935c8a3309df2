"""Scrape-time metrics (`cxstream.api.collector`) against a real Processor over an in-memory table
filled by the real per-message plan, with the worker's Faust objects replaced by small fakes.

Expected values come from the naive oracle (a scan of the produced events), so the collector
is checked against the spec, not against the functions it calls.
"""

from __future__ import annotations

import asyncio

import math
import random
import re
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from faust.types import TP
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cxstream import metrics
from cxstream.api import collector as api_collector
from cxstream.worker.processor import Processor
from cxstream.core.step import plan
from cxstream.core.timefmt import format_rfc3339
from cxstream.core.windows import DAY, HOUR, MINUTE
from cxstream.config.settings import Settings

from ..core import oracle

METRICS_DOC = Path(__file__).resolve().parents[3] / "docs" / "operating" / "metrics.md"
SETTINGS = Settings.from_env({})
NOW_MS = 1_790_000_000_000 + 37_123  # not on a whole minute: as_of must be floored
AS_OF = NOW_MS // MINUTE * MINUTE
PREFIX = SETTINGS.topic_prefix
SEGMENT_NAMES = [name for name in api_collector._SEGMENT_VALUES]  # noqa: SLF001
DERIVED = {"cxstream_segment_nps", "cxstream_segment_csat_percent",
           "cxstream_segment_ces_effort_mean"}


class FakeConsumer:
    def __init__(self) -> None:
        self.assigned: set[TP] = set()
        self.high: dict[TP, int | None] = {}
        self._committed_offset: dict[TP, int | None] = {}
        self._acked: dict[TP, list[int]] = {}

    def assignment(self) -> set[TP]:
        return set(self.assigned)

    def highwater(self, tp: TP) -> int | None:
        assert tp in self.assigned, "Partition is not assigned"  # as aiokafka does
        return self.high.get(tp)


class FakeRecovery:
    def __init__(self) -> None:
        self.in_recovery = False
        self.remaining: dict[TP, int] = {}
        self.completed = asyncio.Event()
        self.completed.set()

    def active_remaining(self) -> Counter[TP]:
        return Counter(self.remaining)


class FakeApp:
    def __init__(self) -> None:
        self.actives: set[TP] = set()
        self.standbys: set[TP] = set()
        self.assignor = SimpleNamespace(assigned_actives=lambda: set(self.actives),
                                        assigned_standbys=lambda: set(self.standbys))
        self.consumer = FakeConsumer()
        self.tables = SimpleNamespace(recovery=FakeRecovery())
        self.rebalancing = False

    def topic(self, *names: str, **kwargs: Any) -> object:
        return object()


def own(app: FakeApp, *partitions: int) -> None:
    app.actives = {TP(f"{PREFIX}{kind}", p) for p in partitions
                   for kind in ("surveys", "interactions", "customers")}


def survey_doc(i: int, cid: str, kind: str, score: int, at: int, **seg: str) -> dict[str, Any]:
    return {"event_id": f"e{i}", "customer_id": cid, "survey": kind, "score": score,
            "occurred_at": format_rfc3339(at), "segment": seg}


def fill(processor: Processor, docs: list[tuple[int, dict[str, Any]]]) -> list[oracle.Ev]:
    """Apply (partition, document) messages through the real plan, as the agent does."""
    offsets: Counter[int] = Counter()
    events = []
    for partition, doc in docs:
        offset = offsets[partition]
        offsets[partition] += 1
        p = plan("surveys", processor.state, processor.cfg, partition=partition, offset=offset,
                 key=doc["customer_id"].encode(), value=orjson.dumps(doc), now_ms=NOW_MS)
        assert p.outcome == "accepted", p
        for key, value in [*p.before_alert, *p.after_alert]:
            processor.state[key] = value
        events.append(oracle.Ev.of(doc, partition, offset))
    return events


def samples(collector: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    text = generate_latest(registry).decode()  # through the real exposition and parser
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def world(seed: int = 7, n: int = 400) -> tuple[FakeApp, Processor, list[oracle.Ev]]:
    """Responses over 40 days on partitions 0..3 of customers with plan/region segments;
    segment `plan:hidden` exists only on partition 3 and `plan:csatonly` has only CSAT."""
    rng = random.Random(seed)
    app = FakeApp()
    processor = Processor(app, SETTINGS, {})  # type: ignore[arg-type]
    docs: list[tuple[int, dict[str, Any]]] = []
    for i in range(n):
        cid = f"c{rng.randrange(60)}"
        partition = int(cid[1:]) % 3  # one customer, one partition
        kind = rng.choice(["nps", "nps", "csat", "ces"])
        score = rng.randrange(11) if kind == "nps" else rng.randrange(1, 6)
        at = NOW_MS - rng.randrange(40 * DAY)
        if rng.random() < 0.3:
            at = NOW_MS - rng.randrange(2 * HOUR)  # the 1h window has data too
        docs.append((partition, survey_doc(i, cid, kind, score, at,
                                           plan=rng.choice(["free", "pro"]),
                                           region=rng.choice(["eu", "na"]))))
    docs += [(3, survey_doc(10_000 + i, "h1", "nps", 9, NOW_MS - i * MINUTE, plan="hidden"))
             for i in range(5)]
    docs += [(0, survey_doc(20_000, "c0", "csat", 5, NOW_MS - 3 * MINUTE, plan="csatonly"))]
    docs.sort(key=lambda d: oracle.Ev.of(d[1], 0, 0).at)  # in time order: none too late
    return app, processor, fill(processor, docs)


def want_value(name: str, want: dict[str, Any], events: list[oracle.Ev], segment: str,
               start: int) -> float | None:
    inside = [e for e in events if start <= e.at < AS_OF and segment in oracle.segments_of(e)
              and e.survey == "ces"]
    return {
        "cxstream_segment_nps_promoters": want["nps"]["promoters"],
        "cxstream_segment_nps_passives": want["nps"]["passives"],
        "cxstream_segment_nps_detractors": want["nps"]["detractors"],
        "cxstream_segment_nps_responses": want["nps"]["responses"],
        "cxstream_segment_csat_responses": want["csat"]["responses"],
        "cxstream_segment_csat_satisfied": want["csat"]["satisfied"],
        "cxstream_segment_ces_responses": want["ces"]["responses"],
        "cxstream_segment_ces_effort_points": sum(e.score for e in inside),
        "cxstream_segment_ces_high_effort": sum(e.score >= 4 for e in inside),
        "cxstream_segment_nps": want["nps"]["score"],
        "cxstream_segment_csat_percent": want["csat"]["score"],
        "cxstream_segment_ces_effort_mean": want["ces"]["mean"],
    }[name]


def test_segment_gauges_equal_the_oracle_for_owned_partitions_only() -> None:
    app, processor, events = world()
    own(app, 0, 2, 3)
    app.standbys = {TP(f"{PREFIX}surveys", 1)}  # a standby is never counted
    got = samples(api_collector.WorkerCollector(app, processor, ready=lambda: True,
                                          clock=lambda: NOW_MS / 1000))
    mine = [e for e in events if e.partition in {0, 2, 3}]
    checked = 0
    for window in SETTINGS.windows:
        start = AS_OF - window.ms
        for segment in sorted(oracle.all_segments(events)):
            want = oracle.scores(mine, segment, start, AS_OF)
            for name in SEGMENT_NAMES:
                value = got.get((name, (("segment", segment), ("window", window.name))))
                expected = want_value(name, want, mine, segment, start)
                if expected is None:
                    assert value is None, (name, segment, window.name)  # omitted, never NaN
                else:
                    assert value is not None and math.isclose(value, expected, abs_tol=1e-9), (
                        name, segment, window.name, value, expected)
                    checked += 1
    assert checked > 250
    # Nothing from partition 1, owned by someone else: its responses are not in `all`.
    all_nps = sum(got[(n, (("segment", "all"), ("window", "30d")))] for n in [
        "cxstream_segment_nps_responses", "cxstream_segment_csat_responses",
        "cxstream_segment_ces_responses"])
    in_30d = [e for e in events if AS_OF - 30 * DAY <= e.at < AS_OF]
    assert all_nps == sum(e.partition != 1 for e in in_30d) < len(in_30d)
    assert got[("cxstream_assigned_partitions", ())] == 3
    assert got[("cxstream_segment_nps", (("segment", "plan:hidden"), ("window", "1h")))] == 100.0


def test_segment_series_are_capped_per_metric_and_window_the_rest_summed_as_other() -> None:
    """Past CXSTREAM_METRIC_SEGMENTS_MAX, each segment gauge keeps `all`, the segments with
    the most responses and `other`, the exact sum of the rest; how many were summed is
    exported per window. Through the real exposition, against the oracle."""
    import dataclasses

    app, processor, events = world()
    own(app, 0, 1, 2, 3)
    processor.settings = dataclasses.replace(SETTINGS, metric_segments_max=4)
    got = samples(api_collector.WorkerCollector(app, processor, ready=lambda: True,
                                                clock=lambda: NOW_MS / 1000))
    for window in SETTINGS.windows:
        start = AS_OF - window.ms
        present = [s for s in sorted(oracle.all_segments(events))
                   if oracle.scores(events, s, start, AS_OF)["nps"]["responses"]
                   + oracle.scores(events, s, start, AS_OF)["csat"]["responses"]
                   + oracle.scores(events, s, start, AS_OF)["ces"]["responses"]]
        for name in SEGMENT_NAMES:
            shown = {dict(labels)["segment"] for (n, labels), _ in got.items()
                     if n == name and dict(labels)["window"] == window.name}
            assert len(shown) <= 4
        shown = {dict(labels)["segment"] for (n, labels), _ in got.items()
                 if n == "cxstream_segment_nps_responses" and dict(labels)["window"] == window.name}
        if len(present) <= 4:
            assert shown == set(present)
            continue
        assert "all" in shown and "other" in shown
        summed = [s for s in present if s not in shown]
        assert got[("cxstream_metric_segments_summed", (("window", window.name),))] == len(summed)
        for name in ("cxstream_segment_nps_responses", "cxstream_segment_csat_responses"):
            field = name.split("_")[2]
            want = sum(oracle.scores(events, s, start, AS_OF)[field]["responses"]
                       for s in summed)
            assert got[(name, (("segment", "other"), ("window", window.name)))] == want
        # The ones kept have at least as many responses as any summed.
        def responses(s: str) -> int:
            w = oracle.scores(events, s, start, AS_OF)
            return w["nps"]["responses"] + w["csat"]["responses"] + w["ces"]["responses"]
        kept = [s for s in shown if s not in {"all", "other"}]
        assert min(map(responses, kept)) >= max(map(responses, summed))


async def test_a_prepared_scrape_equals_the_one_piece_scrape_and_lets_batches_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`prepare` (the /metrics view's way) gives the same samples as computing everything in
    `collect`, and hands the event loop back between slices (here: after every step)."""
    app, processor, _ = world()
    own(app, 0, 2, 3)
    collector = api_collector.WorkerCollector(app, processor, ready=lambda: True,
                                        clock=lambda: NOW_MS / 1000)
    whole = samples(collector)
    monkeypatch.setattr(api_collector, "SLICE_S", 0.0)
    turns = 0
    stop = asyncio.Event()

    async def batches() -> None:  # stands in for the worker's batches on the same loop
        nonlocal turns
        while not stop.is_set():
            turns += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(batches())
    await asyncio.sleep(0)
    await collector.prepare()
    stop.set()
    await other
    sliced = samples(collector)
    assert sliced == whole and len([k for k in whole if k[0] == "cxstream_segment_nps"]) > 20
    steps = len(SETTINGS.windows) * 3  # one per window and owned partition
    assert turns >= steps - 1
    assert collector._prepared is None  # noqa: SLF001 - used by that one collect only


async def test_a_rebalance_during_a_prepared_scrape_drops_the_segment_series(
        monkeypatch: pytest.MonkeyPatch) -> None:
    app, processor, _ = world()
    own(app, 0, 1)
    collector = api_collector.WorkerCollector(app, processor, ready=lambda: True,
                                        clock=lambda: NOW_MS / 1000)
    monkeypatch.setattr(api_collector, "SLICE_S", 0.0)

    async def rebalance() -> None:
        app.rebalancing = True

    task = asyncio.create_task(rebalance())
    await collector.prepare()
    await task
    got = samples(collector)
    assert not [k for k in got if k[0].startswith("cxstream_segment_")]
    assert got[("cxstream_assigned_partitions", ())] == 2
    # A revoke that is already over by the next slice (the assignment changed) drops them too.
    app.rebalancing = False

    async def revoke() -> None:
        own(app, 0)

    task = asyncio.create_task(revoke())
    await collector.prepare()
    await task
    assert not [k for k in samples(collector) if k[0].startswith("cxstream_segment_")]
    await collector.prepare()  # nothing changes meanwhile: all there
    assert [k for k in samples(collector) if k[0].startswith("cxstream_segment_")]


def test_derived_gauges_are_omitted_without_responses() -> None:
    app, processor, _ = world()
    own(app, 0)
    got = samples(api_collector.WorkerCollector(app, processor, ready=lambda: True,
                                          clock=lambda: NOW_MS / 1000))
    key = (("segment", "plan:csatonly"), ("window", "1h"))
    assert got[("cxstream_segment_csat_percent", key)] == 100.0
    assert got[("cxstream_segment_nps_responses", key)] == 0  # counts stay, exact zeros
    assert ("cxstream_segment_nps", key) not in got
    assert ("cxstream_segment_ces_effort_mean", key) not in got
    assert not any(math.isnan(v) for v in got.values())


def test_labels_are_bounded() -> None:
    app, processor, events = world()
    own(app, 0, 1, 2, 3)
    got = samples(api_collector.WorkerCollector(app, processor, ready=lambda: True,
                                          clock=lambda: NOW_MS / 1000))
    windows = {w.name for w in SETTINGS.windows}
    segments = oracle.all_segments(events)
    for name, labels in got:
        if name.startswith("cxstream_segment_"):
            assert [k for k, _ in labels] == ["segment", "window"]
            assert dict(labels)["window"] in windows and dict(labels)["segment"] in segments
    assert {dict(l)["segment"] for n, l in got if n == "cxstream_segment_nps_responses"} == segments


def test_nothing_per_segment_without_owned_partitions_or_while_not_ready() -> None:
    app, processor, _ = world()
    collector = api_collector.WorkerCollector(app, processor, ready=lambda: True,
                                        clock=lambda: NOW_MS / 1000)
    got = samples(collector)  # owns nothing (e.g. everything was revoked)
    assert not [k for k in got if k[0].startswith("cxstream_segment_")]
    assert got[("cxstream_assigned_partitions", ())] == 0
    own(app, 0, 1)
    app.tables.recovery.in_recovery = True
    app.tables.recovery.remaining = {TP("x-changelog", 0): 120, TP("x-changelog", 1): -3}
    not_ready = api_collector.WorkerCollector(app, processor, ready=lambda: False,
                                        clock=lambda: NOW_MS / 1000)
    got = samples(not_ready)
    assert not [k for k in got if k[0].startswith(("cxstream_segment_", "cxstream_consumer_"))]
    assert got[("cxstream_recovery_in_progress", ())] == 1
    assert got[("cxstream_recovery_remaining_messages", ())] == 120  # a negative never offsets
    assert got[("cxstream_assigned_partitions", ())] == 2
    # A readiness check that fails (the consumer has not started yet) counts as not ready.
    def boom() -> bool:
        raise RuntimeError("Consumer thread not yet started")
    assert not [k for k in samples(api_collector.WorkerCollector(app, processor, ready=boom))
                if k[0].startswith("cxstream_segment_")]


def test_recovery_remaining_is_zero_when_not_recovering() -> None:
    app, processor, _ = world(n=10)
    app.tables.recovery.remaining = {TP("x-changelog", 0): 7}  # Faust's leftover bookkeeping
    got = samples(api_collector.WorkerCollector(app, processor, ready=lambda: True))
    assert got[("cxstream_recovery_in_progress", ())] == 0
    assert got[("cxstream_recovery_remaining_messages", ())] == 0


def test_consumer_lag_per_owned_input_partition() -> None:
    app, processor, _ = world(n=10)
    own(app, 0, 1)
    c = app.consumer
    surveys0, surveys1 = TP(f"{PREFIX}surveys", 0), TP(f"{PREFIX}surveys", 1)
    inter0, cust0 = TP(f"{PREFIX}interactions", 0), TP(f"{PREFIX}customers", 0)
    c.assigned = set(app.actives) - {TP(f"{PREFIX}customers", 1)}  # client not yet caught up
    c.high = {surveys0: 100, surveys1: 50, inter0: 10, cust0: 3,
              TP(f"{PREFIX}interactions", 1): None,  # not fetched yet: unknown, left out
              TP(f"{PREFIX}customers", 1): 9}
    c._committed_offset = {surveys0: 40, surveys1: 20, inter0: 10}
    c._acked = {surveys0: [40, 41, 42], surveys1: []}
    got = samples(api_collector.WorkerCollector(app, processor, ready=lambda: True))
    lag = {dict(labels)["topic"] + dict(labels)["partition"]: v
           for (name, labels), v in got.items() if name == "cxstream_consumer_lag_messages"}
    # 100 - (42 + 1); 50 - 20; caught up; never committed: from offset 0.
    assert lag == {"surveys0": 57, "surveys1": 30, "interactions0": 0, "customers0": 3}
    c.high[inter0] = 5  # an older high watermark than the commit: never negative
    got = samples(api_collector.WorkerCollector(app, processor, ready=lambda: True))
    assert got[("cxstream_consumer_lag_messages",
                (("partition", "0"), ("topic", "interactions")))] == 0


def test_a_failing_reading_does_not_break_the_scrape(caplog: pytest.LogCaptureFixture) -> None:
    app, processor, _ = world(n=10)
    own(app, 0)
    app.consumer = None  # type: ignore[assignment]  # lag reading raises
    got = samples(api_collector.WorkerCollector(app, processor, ready=lambda: True,
                                          clock=lambda: NOW_MS / 1000))
    assert got[("cxstream_assigned_partitions", ())] == 1
    assert any(n == "cxstream_segment_nps_responses" for n, _ in got)
    assert "cxstream_consumer_lag_messages" in caplog.text


def test_install_replaces_the_previous_collector() -> None:
    registry = CollectorRegistry(auto_describe=True)
    app1, p1, _ = world(n=10)
    app2, p2, _ = world(n=10)
    own(app1, 0)
    api_collector.install(app1, p1, ready=lambda: True, registry=registry)
    api_collector.install(app2, p2, ready=lambda: True, registry=registry)  # no duplicate error
    text = generate_latest(registry).decode()
    assert "cxstream_assigned_partitions 0.0" in text  # app2's state, not app1's


def test_alert_delays_are_observed_per_kind() -> None:
    def count(hist: Any, kind: str) -> float:
        return hist.labels(kind)._sum.get(), sum(b.get() for b in hist.labels(kind)._buckets)

    before_event = count(metrics.ALERT_DELAY_FROM_EVENT, "recovered")
    before_receipt = count(metrics.ALERT_DELAY_FROM_RECEIPT, "recovered")
    occurred = int(time.time() * 1000) - 2 * DAY
    alert = {"kind": "recovered", "occurred_at": format_rfc3339(occurred)}
    metrics.alert_acknowledged(alert, time.monotonic() - 0.25)
    s, n = count(metrics.ALERT_DELAY_FROM_EVENT, "recovered")
    assert n == before_event[1] + 1 and 2 * 86400 - 1 < s - before_event[0] < 2 * 86400 + 60
    s, n = count(metrics.ALERT_DELAY_FROM_RECEIPT, "recovered")
    assert n == before_receipt[1] + 1 and 0.25 <= s - before_receipt[0] < 30
    metrics.alert_acknowledged(alert, None)  # receipt unknown: only the event delay
    assert count(metrics.ALERT_DELAY_FROM_RECEIPT, "recovered")[1] == n
    assert metrics.ALERT_DELAY_FROM_EVENT.labels("recovered")  # buckets reach days
    assert max(metrics.ALERT_DELAY_FROM_EVENT._upper_bounds[:-1]) >= 7 * 86400
    assert max(metrics.ALERT_DELAY_FROM_RECEIPT._upper_bounds[:-1]) >= 30
    assert min(metrics.ALERT_DELAY_FROM_RECEIPT._upper_bounds) < 0.01


def exported() -> dict[str, str]:
    """Every metric name cxstream exports → its type (counters with `_total`)."""
    out = {}
    for fam in metrics.REGISTRY.collect():
        if fam.name.startswith("cxstream_") and fam.type in {"counter", "gauge", "histogram"}:
            name = fam.name + "_total" if fam.type == "counter" else fam.name
            if not name.endswith("_created"):
                out[name] = fam.type
    for spec in metrics.SCRAPED:
        out[spec.name] = "gauge"
    return out


def test_readme_metrics_table_lists_every_metric_with_type_and_labels() -> None:
    section = METRICS_DOC.read_text().split("# Metrics", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(cxstream_[a-z_]+)` \| (\w+) \| (.*?) \| (.+?) \|$", section,
                      flags=re.M)
    documented = {name: kind for name, kind, _, _ in rows}
    assert documented == exported()
    labels = {name: sorted(re.findall(r"`(\w+)`", cell)) for name, _, cell, _ in rows}
    for spec in metrics.SCRAPED:
        assert labels[spec.name] == sorted(spec.labels), spec.name
    assert labels["cxstream_alert_delay_from_event_seconds"] == ["kind"]
    assert labels["cxstream_build_info"] == ["version"]


def test_buckets_of_the_earlier_layout_stop_the_worker_with_what_to_do() -> None:
    """A state written one entry per segment (commits before the current layout) is never
    read as if it had no buckets: building the partition's index fails, naming the fix."""
    app = FakeApp()
    old = {"b|0|60000|0|plan:pro": [1, 0, 0, 0, 0, 0, 0, 0, 7], "t|0": {"t": 0}}
    processor = Processor(app, SETTINGS, old)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError,
                       match="earlier cxstream layout.*'State layout' in docs/operating/state.md"):
        processor.index(0)
    assert processor.index(1).segments == {}  # other partitions are unaffected
