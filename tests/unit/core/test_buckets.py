"""Buckets against the brute-force oracle: a minimal in-memory worker built only from the
core functions (stream time, too late, dedupe, segments with the cap, increments, expiry)
answers every whole-minute window within retention exactly as a scan of all events does."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxstream.core.buckets import (
    SEGMENT_MAX,
    add_response,
    fits,
    increments,
    query,
    segment_bytes,
    window_counts_all,
)
from cxstream.core.model import SurveyResponse
from cxstream.core.scoring import add, increment, plus, summary, zero
from cxstream.core.segments import segment_keys
from cxstream.core.windows import (
    DAY,
    HOUR,
    MINUTE,
    Window,
    cover,
    expired_before,
    horizon_ms,
    is_too_late,
    parse_windows,
)

from . import oracle

BASE = 1_790_000_000_000 // DAY * DAY
MIN_RESPONSES = 3


@dataclass
class Partition:
    """What a worker keeps per partition: buckets, stream time, cap state, expiry heap."""

    store: dict[tuple[str, int, int], list[int]] = field(default_factory=dict)
    stream_time: int | None = None
    admitted: dict[str, dict[str, int]] = field(default_factory=dict)
    heap: list[tuple[int, tuple[str, int, int]]] = field(default_factory=list)

    def get(self, segment: str, res: int, start: int) -> list[int] | None:
        return self.store.get((segment, res, start))


@dataclass
class Worker:
    horizon: int
    dimensions: frozenset[str] | None
    cap: int
    partitions: dict[int, Partition] = field(default_factory=dict)
    seen: set[tuple[str, str]] = field(default_factory=set)  # the caller's dedupe
    writes: dict[tuple[int, int], int] = field(default_factory=dict)  # (partition, offset) → n
    folded: dict[tuple[int, int], set[str]] = field(default_factory=dict)

    def apply(self, e: oracle.Ev) -> None:
        part = self.partitions.setdefault(e.partition, Partition())
        r = SurveyResponse(e.event_id, e.customer_id, e.survey,  # type: ignore[arg-type]
                           e.score, e.at, e.segment, e.touchpoint, e.channel)
        if part.stream_time is not None and is_too_late(r.occurred_at, part.stream_time,
                                                        self.horizon):
            return
        part.stream_time = r.occurred_at if part.stream_time is None else max(part.stream_time,
                                                                              r.occurred_at)
        if (r.customer_id, r.event_id) not in self.seen:
            self.seen.add((r.customer_id, r.event_id))
            day = r.occurred_at // DAY
            seg = segment_keys(r, dimensions=self.dimensions, admitted=part.admitted,
                               cap=self.cap, day=day,
                               live_from=(part.stream_time - self.horizon) // DAY)
            # Dead slots change no decision: kept here, where nothing bounds the entries.
            for dim, value in (*seg.admit, *seg.seen):
                part.admitted.setdefault(dim, {})[value] = day
            if seg.folded:
                self.folded[(e.partition, e.offset)] = set(seg.folded)
            incs = increments(r, seg.keys)
            self.writes[(e.partition, e.offset)] = len(incs)
            for key in incs:
                if key not in part.store:
                    heapq.heappush(part.heap, (key[2] + key[1], key))
                part.store[key] = add(part.store.get(key) or zero(), r.survey, r.score)
        cutoff = expired_before(part.stream_time, self.horizon)
        while part.heap and part.heap[0][0] <= cutoff:
            del part.store[heapq.heappop(part.heap)[1]]

    def counts(self, segment: str, start: int, end: int) -> list[int]:
        total = zero()
        for part in self.partitions.values():
            total = [a + b for a, b in zip(total, query(part.get, segment, start, end))]
        return total


def run(events: list[oracle.Ev], horizon: int, *, dimensions: frozenset[str] | None = None,
        cap: int = 50) -> Worker:
    w = Worker(horizon, dimensions, cap)
    for e in sorted(events, key=lambda e: (e.offset, e.partition)):  # partitions interleave
        w.apply(e)
    return w


PLANS = ["free", "pro", "enterprise", "Pro", "other", "pro:annual", "fre"]


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    windows = draw(st.sampled_from(["1h,24h,7d,30d", "15m,1h", "24h,7d", "1h,30d"]))
    ws = parse_windows(windows)
    grace = draw(st.sampled_from([0, 10 * MINUTE, HOUR]))
    horizon = horizon_ms(ws, grace)
    partitions = draw(st.integers(1, 3))
    span = draw(st.sampled_from([3 * HOUR, 3 * DAY, 45 * DAY]))
    ordered = draw(st.booleans())  # mostly forward in time, or fully shuffled
    rows = draw(st.lists(st.tuples(
        st.integers(0, 7),                                        # customer
        st.integers(0, 15),                                       # event id (repeats: duplicates)
        st.sampled_from(["nps", "nps", "csat", "ces"]),
        st.integers(0, 10),
        st.integers(0, span),                                     # position in time
        st.one_of(st.just(0), st.integers(-2 * HOUR, 2 * HOUR), st.integers(-40 * DAY, 0),
                  st.sampled_from(["edge-1", "edge", "edge+1"])),  # vs. the lateness bound
        st.sampled_from([0, 1, 59_999, 30_000]),                  # ms inside the minute
        st.sampled_from([None, HOUR, DAY]),                        # snap to a bucket's edges
        st.sampled_from(PLANS), st.none() | st.sampled_from(["web", "app"]),
        st.none() | st.sampled_from(["chat", "email", "phone"]),
        st.booleans(),                                            # repeat an earlier event
    ), min_size=1, max_size=150))
    events: list[oracle.Ev] = []
    offsets = [0] * partitions
    top: dict[int, int] = {}  # stream time so far (too-late events never raise it)
    for i, (c, eid, kind, score, pos, jump, ms, snap, plan, tp, ch, again) in enumerate(rows):
        if again and events and i % 3 == 0:  # a producer retry: the same event, later
            prev = events[(eid * 7 + i) % len(events)]
            p = prev.partition
            events.append(oracle.Ev(p, offsets[p], prev.event_id, prev.customer_id, prev.survey,
                                    prev.score, prev.at, prev.segment, prev.touchpoint,
                                    prev.channel))
            offsets[p] += 1
            continue
        if kind != "nps":
            score = 1 + score % 5
        p = c % partitions
        if isinstance(jump, str) and p in top:  # at, or 1 ms around, stream time − horizon
            at = top[p] - horizon + {"edge-1": -1, "edge": 0, "edge+1": 1}[jump]
        else:
            jump = 0 if isinstance(jump, str) else jump
            at = BASE + (span * i // len(rows) if ordered else pos)
            at = at - at % MINUTE + jump - jump % MINUTE + ms
            if snap is not None:  # the first or the last minute of its hour or day
                at = at - at % snap + (snap - MINUTE if eid % 2 else 0) + ms
        top[p] = max(top.get(p, at), at)
        seg = {"plan": plan, "region": ["eu", "na"][(c + eid) % 2]}
        events.append(oracle.Ev(p, offsets[p], f"e{eid}", f"c{c}", kind, score, at, seg, tp, ch))
        offsets[p] += 1
    cap = draw(st.sampled_from([50, 2, 1, 0]))
    dimensions = draw(st.sampled_from([None, frozenset({"plan", "channel"}), frozenset()]))
    return {"windows": ws, "horizon": horizon, "events": events, "cap": cap,
            "dimensions": dimensions}


@settings(max_examples=120, deadline=None)
@given(scenarios(), st.data())
def test_buckets_equal_the_oracle_within_retention(sc: dict[str, Any], data: st.DataObject) -> None:
    events, horizon = sc["events"], sc["horizon"]
    worker = run(events, horizon, dimensions=sc["dimensions"], cap=sc["cap"])
    good = oracle.accepted(events, horizon)
    segs = oracle.capped_segments(events, horizon, cap=sc["cap"], dimensions=sc["dimensions"])
    assert worker.folded == oracle.folds(events, horizon, cap=sc["cap"],
                                         dimensions=sc["dimensions"])
    assert set(worker.writes) == {(e.partition, e.offset) for e in good}
    kept = oracle.retention_start(events, horizon)
    assert kept is not None
    top = max(e.at for e in good)
    for _ in range(6):
        w: Window = data.draw(st.sampled_from(sc["windows"]), label="window")
        lo = -(-(kept + w.ms) // MINUTE)  # T − W ≥ stream time − horizon on every partition
        hi = max(lo, (top + 2 * HOUR) // MINUTE)
        # Random instants, and instants that put an event right at either edge of the window.
        e = good[data.draw(st.integers(0, len(good) - 1), label="anchor")]
        near = [-(-e.at // MINUTE) + k for k in (0, 1)] + [e.at // MINUTE + k for k in (0, 1)]
        near += [-(-(e.at + w.ms) // MINUTE) + k for k in (0, 1)]
        t_min = data.draw(st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi] + near)),
                          label="as_of minute")
        t = max(lo, t_min) * MINUTE
        for segment in sorted(oracle.all_segments(good, segs)) + ["plan:nope"]:
            got = summary(worker.counts(segment, t - w.ms, t), min_responses=MIN_RESPONSES)
            want = oracle.window_scores(good, segment, w.ms, t, segments=segs,
                                        min_responses=MIN_RESPONSES)
            oracle.assert_matches(got, want)


@settings(max_examples=40, deadline=None)
@given(scenarios())
def test_expired_buckets_are_gone_and_live_ones_kept(sc: dict[str, Any]) -> None:
    events, horizon = sc["events"], sc["horizon"]
    worker = run(events, horizon)
    st_by_p = oracle.stream_times(events, horizon)
    assert set(worker.partitions) >= set(st_by_p)
    for p, part in worker.partitions.items():
        assert part.stream_time == st_by_p[p]
        assert all(start + res > part.stream_time - horizon for _, res, start in part.store)
        assert len(part.heap) == len(part.store)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10), st.integers(0, 20 * DAY),
                          st.dictionaries(st.sampled_from(["plan", "region", "tier"]),
                                          st.sampled_from(["a", "b", "c"]), max_size=3),
                          st.none() | st.sampled_from(["web", "app"])), min_size=1, max_size=40))
def test_write_count_is_the_same_for_30d_windows_as_for_1h(
        rows: list[tuple[int, int, dict[str, str], str | None]]) -> None:
    """Per accepted response: 3 writes per segment, whatever the configured windows."""
    events = [oracle.Ev(0, i, f"e{i}", "c", "nps", score, BASE + pos, seg, tp)
              for i, (score, pos, seg, tp) in enumerate(sorted(rows, key=lambda r: r[1]))]
    short = run(events, horizon_ms(parse_windows("1h"), HOUR))
    long = run(events, horizon_ms(parse_windows("1h,24h,7d,30d"), HOUR))
    assert short.writes == long.writes  # in time order nothing is too late for either
    for e in events:
        assert short.writes[(0, e.offset)] == 3 * len(oracle.segments_of(e))


def test_increments_are_three_per_segment() -> None:
    r = SurveyResponse("e", "c", "csat", 5, BASE + DAY + HOUR + 5 * MINUTE + 7)
    assert increments(r, ("all", "plan:pro")) == [
        ("all", MINUTE, BASE + DAY + HOUR + 5 * MINUTE), ("all", HOUR, BASE + DAY + HOUR),
        ("all", DAY, BASE + DAY),
        ("plan:pro", MINUTE, BASE + DAY + HOUR + 5 * MINUTE), ("plan:pro", HOUR, BASE + DAY + HOUR),
        ("plan:pro", DAY, BASE + DAY)]
    with pytest.raises(ValueError, match="repeat"):
        increments(r, ("all", "all"))


def test_window_bounds_are_inclusive_start_exclusive_end() -> None:
    """[T − W, T): a response exactly at T − W counts, one exactly at T does not."""
    t = BASE + 3 * DAY
    evs = [oracle.Ev(0, 0, "a", "c", "nps", 10, t - DAY),     # first instant: counts
           oracle.Ev(0, 1, "b", "c", "nps", 0, t),            # T itself: does not
           oracle.Ev(0, 2, "x", "c", "nps", 0, t - DAY - 1),  # just before: does not
           oracle.Ev(0, 3, "y", "c", "nps", 9, t - 1)]        # last millisecond: counts
    w = run(evs, 40 * DAY)
    assert w.counts("all", t - DAY, t)[:3] == [2, 0, 0]


def test_query_reads_only_the_cover_and_missing_is_zero() -> None:
    reads: list[tuple[str, int, int]] = []

    def get(segment: str, res: int, start: int) -> list[int] | None:
        reads.append((segment, res, start))
        return [1, 0, 0, 0, 0, 0, 0, 0] if res == HOUR else None

    start, end = BASE + 30 * MINUTE, BASE + 2 * DAY + 3 * HOUR
    assert query(get, "all", start, end) == [23 + 3, 0, 0, 0, 0, 0, 0, 0]
    assert reads == [("all", res, b) for res, b in cover(start, end)]


def test_window_counts_all_reads_the_worker_table_and_drops_the_offset_stamp() -> None:
    from cxstream.core import keys

    table = {keys.bucket_key(2, DAY, BASE): {"o": 999, "s": {"plan:a|b": [1, 2, 3, 4, 5, 6, 7, 8]}},
             keys.bucket_key(2, HOUR, BASE + DAY): {"o": 1000, "s": {"all": [1, 0, 0, 0, 0, 0, 0, 0]}}}
    assert window_counts_all(table.get, 2, BASE, BASE + DAY) == {"plan:a|b": [1, 2, 3, 4, 5, 6, 7, 8]}
    assert window_counts_all(table.get, 1, BASE, BASE + DAY) == {}
    assert window_counts_all(table.get, 2, BASE, BASE + DAY + HOUR) == {
        "plan:a|b": [1, 2, 3, 4, 5, 6, 7, 8], "all": [1, 0, 0, 0, 0, 0, 0, 0]}
    assert window_counts_all(table.get, 2, BASE + MINUTE, BASE + DAY) == {}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.frozensets(st.sampled_from(["all", "plan:pro", "region:eu"]),
                                        min_size=1),
                          st.sampled_from(["nps", "csat", "ces"]), st.integers(1, 5),
                          st.booleans()), max_size=20))
def test_add_response_counts_each_offset_once_and_never_mutates(
        adds: list[tuple[frozenset[str], str, int, bool]]) -> None:
    """Responses added at rising offsets (some added again, as a replay would) equal the
    brute-force sum per segment; no entry, once returned, changes afterwards."""
    entry: dict | None = None
    expected: dict[str, list[int]] = {}
    snapshots: list[tuple[dict, bytes]] = []
    for offset, (segments, survey, score, again) in enumerate(adds):
        inc = increment(survey, score)
        fresh = plus(zero(), inc)
        ordered = sorted(segments)
        new = add_response(entry, offset, ordered, inc, fresh)
        assert new is not None and new["o"] == offset
        for segment in ordered:
            expected[segment] = plus(expected.get(segment, zero()), inc)
        entry = new
        if again:  # the same message replayed after a crash: already in the entry
            assert add_response(entry, offset, ordered, inc, fresh) is None
        snapshots.append((entry, orjson.dumps(entry)))
    assert (entry or {"s": {}})["s"] == expected
    assert all(orjson.dumps(e) == frozen for e, frozen in snapshots)


def test_oracle_rules_by_hand() -> None:
    """The oracle itself, on a hand-checked log: too late is judged against the partition's
    stream time at arrival, duplicates keep the first accepted occurrence."""
    h = 30 * DAY + HOUR
    evs = [oracle.Ev(0, 0, "e1", "c1", "nps", 10, BASE),
           oracle.Ev(0, 1, "e2", "c1", "nps", 0, BASE + 40 * DAY),      # stream time jumps
           oracle.Ev(0, 2, "e3", "c1", "nps", 9, BASE + 9 * DAY),       # too late
           oracle.Ev(0, 3, "e3", "c1", "nps", 9, BASE + 10 * DAY),      # exactly on time: first
           oracle.Ev(0, 4, "e3", "c1", "nps", 0, BASE + 39 * DAY),      # duplicate: ignored
           oracle.Ev(1, 0, "e9", "c2", "csat", 5, BASE)]                 # own stream time
    assert oracle.too_late(evs, h) == {(0, 2)}
    assert [(e.partition, e.offset) for e in oracle.accepted(evs, h)] == [(0, 0), (0, 1), (0, 3),
                                                                          (1, 0)]
    assert oracle.stream_times(evs, h) == {0: BASE + 40 * DAY, 1: BASE}
    assert oracle.retention_start(evs, h) == BASE + 40 * DAY - h
    w = run(evs, h)
    t = BASE + 40 * DAY + MINUTE
    kept = BASE + 9 * DAY + 23 * HOUR
    assert w.counts("all", kept, t)[:4] == [1, 0, 1, 0]  # e3 (9) and e2 (0); e9 is older
    assert w.counts("all", kept + 2 * HOUR, t)[:4] == [0, 0, 1, 0]


def test_oracle_reads_responses_and_documents() -> None:
    r = SurveyResponse("e1", "c1", "ces", 4, BASE + 123, {"plan": "pro"}, "web", None)
    doc = {"event_id": "e1", "customer_id": "c1", "survey": "ces", "score": 4,
           "occurred_at": "2026-09-21T00:00:00.123Z", "segment": {"plan": "pro"},
           "touchpoint": "web"}
    a, b = oracle.Ev.of(r, 3, 7), oracle.Ev.of(doc, 3, 7)
    assert a == b and a.at == BASE + 123 and a.segment == {"plan": "pro"}
    assert oracle.segments_of(a) == {"all", "plan:pro", "touchpoint:web"}
    assert oracle.Ev.of(dict(doc, occurred_at=BASE + 123), 3, 7) == a


SEGMENT_TEXT = st.text(alphabet=st.sampled_from(["a", "é", "\x01", '"', "\\", "\U0001f600"]),
                       min_size=1, max_size=128)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(SEGMENT_TEXT.map(lambda v: f"d:{v}"), max_size=6), max_size=30),
       st.integers(200, 20_000))
def test_an_entry_kept_within_the_bound_never_encodes_past_it(
        responses: list[list[str]], bound: int) -> None:
    """Responses are added only while `fits` says so: the entry then never encodes to more
    than `bound` bytes, even with every counter and the offset at their widest; and a
    response refused stays refused by any entry holding more segments (later responses),
    which is what makes the decision the same in a replay."""
    inc = increment("nps", 9)
    fresh = plus(zero(), inc)
    entry: Any = None
    refused: list[tuple[Any, list[str]]] = []
    for offset, segs in enumerate(responses):
        segs = ["all", *dict.fromkeys(segs)]
        if not fits(entry, segs, bound):
            refused.append((entry, segs))
            continue
        entry = add_response(entry, offset, segs, inc, fresh)
        widest = 10**19 + 9
        wide = {"o": widest, "s": {seg: [widest] * 8 for seg in entry["s"]}}
        assert len(orjson.dumps(wide)) <= bound
    for before, segs in refused:
        if entry is not None and not set(segs) <= set(entry["s"]):
            assert not fits(entry, segs, bound)


def test_segment_bytes_covers_the_widest_segment_the_decoder_accepts() -> None:
    widest = "d" * 64 + ":" + "\x01" * 128
    assert segment_bytes(widest) <= SEGMENT_MAX
    assert len(orjson.dumps({widest: [10**19] * 8})) - 2 + 1 <= SEGMENT_MAX
