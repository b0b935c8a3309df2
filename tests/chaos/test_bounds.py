"""Chaos 7: input that grows the state without end. Against the real broker and worker: a
burst of 400 valid responses that bring 40 distinct dimensions (16 each, the schema's most)
with long made-up values, between ordinary traffic. Before the bounds, one bucket entry grew
past the changelog topic's `max.message.bytes`, its write failed for good and the partition
never moved again. Now every bound holds:

* the ordinary traffic behind the burst is processed within seconds, and its scores are
  exact (against the oracle of the bounds, `oracle.sized`);
* every response past a bound is dead-lettered with its code at its source position
  (`too_many_dimensions`, `segment_value_capped`: counted all the same;
  `entry_too_large`: not counted), and no other;
* no record on the state changelog is larger than the topic's `max.message.bytes` (set low
  here, 64 KiB, so the burst reaches it), and the worker stays ready;
* `/metrics` exports at most `CXSTREAM_METRIC_SEGMENTS_MAX` segments per metric and window.
"""

from __future__ import annotations

import random
import time
from typing import Any

import orjson
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from cxstream.config.settings import Settings
from cxstream.core.timefmt import format_rfc3339
from cxstream.kafka.admin import state_changelog
from tests.integration.harness import (
    HORIZON_MS,
    WINDOW_MS,
    Worker,
    dead_letter_counts,
    produce,
    read_all,
    wait_inputs_drained,
)
from tests.unit.core import oracle

from .tools import ReadyWatch

PARTITIONS = 2
LIMIT = 64 * 1024  # the changelog topic's max.message.bytes
SERIES_MAX = 40
ORDINARY_SEGMENTS = {"plan": ["pro", "free", "team"], "region": ["eu", "na"]}


def response(i: int, cid: str, at: int, segment: dict[str, str], **extra: Any) -> bytes:
    rng = random.Random(i)
    return orjson.dumps({"event_id": f"e{i}", "customer_id": cid, "survey": "nps",
                         "score": rng.randrange(11), "occurred_at": format_rfc3339(at),
                         "segment": segment, **extra})


def ordinary(start: int, n: int, at: int) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(start, start + n):
        rng = random.Random(i)
        cid = f"cust-{rng.randrange(60):03d}"
        seg = {dim: rng.choice(values) for dim, values in ORDINARY_SEGMENTS.items()}
        out.append((cid.encode(), response(i, cid, at + i, seg,
                                           touchpoint=rng.choice(["web", "app"]))))
    return out


def burst(start: int, n: int, at: int) -> list[tuple[bytes, bytes]]:
    """`n` responses, each with 16 of 40 dimensions, every value new and 100 characters."""
    out = []
    for i in range(start, start + n):
        cid = f"junk-{i % 97:03d}"
        seg = {f"x{(i + k) % 40:02d}": f"{i:06d}-{k:02d}-".ljust(100, "v") for k in range(16)}
        out.append((cid.encode(), response(i, cid, at + i, seg)))
    return out


async def create_changelog(bootstrap: str, prefix: str) -> str:
    """The state changelog, created before the worker (which keeps an existing one) with a
    small `max.message.bytes`."""
    name = state_changelog(Settings.from_env({"CXSTREAM_TOPIC_PREFIX": prefix}))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1, topic_configs={
            "cleanup.policy": "compact", "max.message.bytes": str(LIMIT)})])
    finally:
        await admin.close()
    return name


async def test_a_burst_of_dimensions_never_stops_a_partition(worker_factory: Any) -> None:
    w: Worker = worker_factory(partitions=PARTITIONS,
                               extra_env={"CXSTREAM_METRIC_SEGMENTS_MAX": str(SERIES_MAX)})
    t = w.prefix
    changelog = await create_changelog(w.bootstrap, t)
    w.start()
    await w.wait_ready()
    watch = ReadyWatch(w).start()
    at = (int(time.time() * 1000) - 2 * 3_600_000) // 60_000 * 60_000
    sent: list[tuple[bytes, bytes]] = []
    positions: list[tuple[int, int]] = []
    try:
        # Ordinary traffic first (its dimensions and values are admitted), the burst, then
        # ordinary traffic again, all on the same partitions and day.
        for items in (ordinary(0, 150, at), burst(1000, 400, at + 1000)):
            positions += await produce(w.bootstrap, f"{t}surveys", items)
            sent += items
        await wait_inputs_drained(w)
        after = ordinary(2000, 300, at + 5000)
        began = time.monotonic()
        positions += await produce(w.bootstrap, f"{t}surveys", after)
        sent += after
        await wait_inputs_drained(w, timeout_s=120)
        took = time.monotonic() - began
        metrics = await w.metrics()
    finally:
        await watch.stop()
    assert set(watch.statuses()) == {200}, "the worker was not ready throughout"
    assert took < 60, f"the ordinary traffic behind the burst took {took:.0f} s"

    events = [oracle.Ev.of(orjson.loads(value), p, o)
              for (_, value), (p, o) in zip(sent, positions)]
    counted, rejected = oracle.sized(events, HORIZON_MS, cap=50, max_dims=20,
                                     max_response_dims=16, bound=LIMIT - 1024)
    assert rejected and len(counted) > 450  # the burst reached the entry bound

    # Dead letters: each position past a bound, with its code, and no other.
    counts, one = await dead_letter_counts(w.bootstrap, t)
    got: dict[tuple[int, int], set[str]] = {}
    for rec in await read_all(w.bootstrap, f"{t}deadletter"):
        d = orjson.loads(rec.value)
        got.setdefault((d["source_partition"], d["source_offset"]), set()).add(d["error_code"])
        assert d.get("counted", False) is (d["error_code"] != "entry_too_large"), d
    want: dict[tuple[int, int], set[str]] = {pos: {"entry_too_large"} for pos in rejected}
    by_pos = {(e.partition, e.offset): e for e in events}
    for pos, segs in counted.items():
        dims = {**by_pos[pos].segment, "touchpoint": by_pos[pos].touchpoint}
        dims = {k: v for k, v in dims.items() if v is not None}
        codes = set()
        if any(f"{dim}:{oracle.OTHER}" in segs and value != oracle.OTHER
               for dim, value in dims.items()):
            codes.add("segment_value_capped")
        if {dim for dim in dims if not any(s.startswith(f"{dim}:") for s in segs)}:
            codes.add("too_many_dimensions")
        if codes:
            want[pos] = codes
    assert got == want, (len(got), len(want), sorted(set(got) ^ set(want))[:5])
    assert all(n <= 2 for n in counts.values())

    # The ordinary segments' scores, exact.
    good = [e for e in events if (e.partition, e.offset) in counted]
    as_of = (max(e.at for e in events) // 60_000 + 1) * 60_000
    for window in ("1h", "24h"):
        status, body = await w.get("/scores", window=window, as_of=format_rfc3339(as_of))
        assert status == 200, body
        rows = {row["segment"]: row for row in body["segments"]}
        names = ["all", "touchpoint:web", "touchpoint:app",
                 *(f"{d}:{v}" for d, vs in ORDINARY_SEGMENTS.items() for v in vs)]
        for segment in names:
            want_scores = oracle.scores(good, segment, as_of - WINDOW_MS[window], as_of,
                                        segments=counted)
            oracle.assert_matches(rows[segment], want_scores)

    # No changelog record over the topic's limit. (Entries are measured with every counter
    # at its widest, so the largest stays well under it: the bound was reached all the same,
    # `rejected` above.)
    largest = max(len(rec.key or b"") + len(rec.value or b"")
                  for rec in await read_all(w.bootstrap, changelog))
    assert LIMIT // 4 < largest <= LIMIT

    # /metrics: at most SERIES_MAX segments per metric and window.
    per: dict[tuple[str, str], set[str]] = {}
    for (name, labels), _ in metrics.items():
        label = dict(labels)
        if "segment" in label:
            per.setdefault((name, label["window"]), set()).add(label["segment"])
    assert per and max(len(s) for s in per.values()) <= SERIES_MAX
    assert any("other" in s for s in per.values())
    assert "MessageSizeTooLarge" not in w.log_tail(2000)
