"""Rolling-window scores from buckets equal a brute-force recomputation, for shuffled,
duplicated and late events over 40+ days, on several partitions, at any whole minute."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxstream.core import keys
from cxstream.core.buckets import window_counts_all
from cxstream.core.expiry import ExpiryIndex
from cxstream.core.scoring import summary
from cxstream.core.step import StepConfig, plan
from cxstream.core.timefmt import format_rfc3339
from cxstream.core.windows import DAY, HOUR, MINUTE, bucket_keys_for, cover, parse_windows

from . import oracle

WINDOWS = parse_windows("1h,24h,7d,30d")
HORIZON = 30 * DAY + HOUR
CFG = StepConfig(horizon_ms=HORIZON)
BASE = 1_790_000_000_000 // DAY * DAY
NOW = BASE + 80 * DAY


def make_events(rng: random.Random, n: int, partitions: int) -> list[oracle.Ev]:
    events = []
    offsets = [0] * partitions
    span = 45 * DAY
    for i in range(n):
        if events and rng.random() < 0.08:  # a producer retry: the same event again, later
            prev = rng.choice(events)
            events.append(oracle.Ev(prev.partition, offsets[prev.partition], prev.event_id,
                                    prev.customer_id, prev.survey, prev.score, prev.at,
                                    prev.segment, prev.touchpoint, prev.channel))
            offsets[prev.partition] += 1
            continue
        cid = f"c{rng.randrange(40)}"
        p = hash(cid) % partitions
        kind = rng.choice(["nps", "nps", "csat", "ces"])
        score = rng.randrange(11) if kind == "nps" else rng.randrange(1, 6)
        # Mostly moving forward with jitter; some far out of order, some too late.
        at = BASE + int(span * i / n) + rng.randrange(-2 * HOUR, 2 * HOUR) + rng.randrange(60_000)
        if rng.random() < 0.05:
            at -= rng.randrange(DAY, 40 * DAY)
        seg = {"plan": rng.choice(["free", "pro", "enterprise"]), "region": rng.choice(["eu", "na"])}
        events.append(oracle.Ev(p, offsets[p], f"e{i}", cid, kind, score, at, seg,
                                rng.choice(["web", "app", None]), rng.choice(["chat", None])))
        offsets[p] += 1
    return events


def run_pipeline(events: list[oracle.Ev]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    indexes: dict[int, ExpiryIndex] = {}
    for e in sorted(events, key=lambda e: (e.offset, e.partition)):  # partitions interleave
        doc = {"event_id": e.event_id, "customer_id": e.customer_id, "survey": e.survey,
               "score": e.score, "occurred_at": format_rfc3339(e.at), "segment": e.segment,
               "touchpoint": e.touchpoint, "channel": e.channel}
        p = plan("surveys", table, CFG, partition=e.partition, offset=e.offset,
                 key=e.customer_id.encode(), value=orjson.dumps(doc), now_ms=NOW)
        idx = indexes.setdefault(e.partition, ExpiryIndex())
        for k, v in p.before_alert + p.after_alert:
            table[k] = v
            if k.startswith("b|"):
                idx.add_bucket(k, v)
        if p.stream_time is not None:
            for k in idx.pop_expired(p.stream_time - HORIZON):
                del table[k]
    return table


def query(table: dict[str, Any], partitions: int, segment: str, start: int, end: int) -> dict[str, Any]:
    """The segment's scores as the worker reads them: every segment's counts per partition
    (`window_counts_all`), summed over the partitions."""
    total = [0] * 8
    for p in range(partitions):
        found = window_counts_all(table.get, p, start, end).get(segment, [0] * 8)
        total = [a + b for a, b in zip(total, found)]
    return summary(total)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(50, 400), partitions=st.integers(1, 4),
       data=st.data())
def test_bucket_scores_equal_the_oracle(seed: int, n: int, partitions: int, data: st.DataObject) -> None:
    rng = random.Random(seed)
    events = make_events(rng, n, partitions)
    table = run_pipeline(events)
    good = oracle.accepted(events, HORIZON)
    st_by_p = oracle.stream_times(events, HORIZON)
    latest_cutoff = max(st_by_p.values()) - HORIZON
    for _ in range(6):
        w = data.draw(st.sampled_from(WINDOWS))
        # Any whole minute whose window lies inside retention on every partition.
        lo = (latest_cutoff + w.ms) // MINUTE + 1
        hi = (max(st_by_p.values()) + 2 * HOUR) // MINUTE
        t = data.draw(st.integers(lo, max(lo, hi))) * MINUTE
        for segment in sorted(oracle.all_segments(good))[:8]:
            oracle.assert_matches(query(table, partitions, segment, t - w.ms, t),
                                  oracle.scores(good, segment, t - w.ms, t))


def test_expired_buckets_are_deleted() -> None:
    rng = random.Random(7)
    events = make_events(rng, 600, 2)
    table = run_pipeline(events)
    st_by_p = oracle.stream_times(events, HORIZON)
    for k in table:
        if k.startswith("b|"):
            p, res, start = keys.parse_bucket_key(k)
            assert start + res > st_by_p[p] - HORIZON, k


@pytest.mark.parametrize("window", ["1h", "24h", "7d", "30d"])
def test_write_cost_is_independent_of_the_window(window: str) -> None:
    """Each response writes 3 buckets per segment whatever the windows; a query reads a bounded
    number of buckets (≤ 2·59 + 2·23 + days)."""
    cfg_windows = parse_windows(window)
    assert len(bucket_keys_for(BASE + 12_345_678)) == 3
    w = cfg_windows[0]
    worst = max(len(cover(t - w.ms, t)) for t in range(BASE + MINUTE, BASE + 2 * DAY, 37 * MINUTE))
    assert worst <= 2 * 59 + 2 * 23 + max(w.ms // DAY, 1)
