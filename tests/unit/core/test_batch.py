"""Batched state writes (`cxstream.core.batch`): planning a batch against its pending writes
and writing each key once gives the state of one-message-at-a-time processing, and a crash
anywhere in the batch's changelog writes is repaired exactly by the replay."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cxstream.core import keys
from cxstream.core.batch import PendingWrites, Planned, plan_records
from cxstream.core.journey import CustomerState, journey_from_json, legacy_journey

from cxstream.core.step import StepConfig

from .test_step import (
    AGING,
    AGING_SIZED,
    BASE,
    CAPPED,
    CFG,
    SIZED,
    NOW,
    many_dimension_streams,
    mixed_streams,
    run,
    streams,
    survey,
    totals,
)


def record(offset: int, key: bytes | None, value: bytes, partition: int = 0) -> Any:
    """A Kafka record as the agent hands it over (the fields `plan_records` reads)."""
    return SimpleNamespace(topic="t", partition=partition, offset=offset, key=key, value=value)


def unexpected(msg: Any, exc: Exception) -> None:
    raise AssertionError(f"planning offset {msg.offset} raised {exc!r}") from exc


def run_batched(messages: list[tuple[str, bytes, bytes]], sizes: list[int],
                state: dict[str, Any] | None = None, log: list[tuple[str, Any]] | None = None,
                start: int = 0, alerts: list[tuple[int, dict[str, Any]]] | None = None,
                ends: list[int] | None = None, cfg: StepConfig = CFG) -> dict[str, Any]:
    """Like the agent: batches of `sizes` (cycled) from offset `start`, each planned against
    its pending writes, alerts collected, then written in `PendingWrites.ordered` order.
    `alerts` receives (offset, alert); `ends[i]`: the log length once message i's *batch*
    is written (it is acknowledged then)."""
    table = {} if state is None else state
    log = [] if log is None else log
    alerts = [] if alerts is None else alerts
    ends = [] if ends is None else ends
    offset, turn = start, 0
    while offset < len(messages):
        size = sizes[turn % len(sizes)]
        turn += 1
        batch = range(offset, min(offset + size, len(messages)))
        pending = PendingWrites(table)
        out = Planned()
        for o in batch:  # one record per call: the kinds interleave in one offset sequence
            kind, key, value = messages[o]
            planned = len(out.alerts)
            plan_records(kind, [record(o, key, value)], pending, cfg, NOW, out, unexpected)
            alerts.extend((o, alert) for alert in out.alerts[planned:])
        for k, v in pending.ordered(0):
            table[k] = v
            log.append((k, v))
        ends.extend(len(log) for _ in batch)
        offset = batch.stop
    return table


sizes = st.lists(st.integers(1, 12), min_size=1, max_size=4)


@settings(max_examples=200, deadline=None)
@given(streams(), sizes)
def test_batches_give_the_state_and_alerts_of_one_message_at_a_time(
        msgs: list[tuple[str, bytes, bytes]], batch_sizes: list[int]) -> None:
    one_alerts: list[dict[str, Any]] = []
    one, _ = run(msgs, alerts=one_alerts)
    batched_alerts: list[tuple[int, dict[str, Any]]] = []
    batched = run_batched(msgs, batch_sizes, alerts=batched_alerts)
    assert batched == one
    assert [a["alert_id"] for _, a in batched_alerts] == [a["alert_id"] for a in one_alerts]


@settings(max_examples=300, deadline=None)
@given(streams(), sizes, sizes, st.data())
def test_a_crash_anywhere_in_a_batch_is_repaired_by_the_replay(
        msgs: list[tuple[str, bytes, bytes]], batch_sizes: list[int], replay_sizes: list[int],
        data: st.DataObject) -> None:
    check_batch_crash(msgs, batch_sizes, replay_sizes, data)


@settings(max_examples=300, deadline=None)
@given(many_dimension_streams(), sizes, sizes, st.data())
def test_a_crash_anywhere_in_a_batch_with_every_cap_reached_is_repaired_by_the_replay(
        msgs: list[tuple[str, bytes, bytes]], batch_sizes: list[int], replay_sizes: list[int],
        data: st.DataObject) -> None:
    check_batch_crash(msgs, batch_sizes, replay_sizes, data, CAPPED)


@settings(max_examples=300, deadline=None)
@given(many_dimension_streams(days=3), sizes, sizes, st.data())
def test_a_crash_anywhere_in_a_batch_with_entries_at_their_bound_is_repaired_by_the_replay(
        msgs: list[tuple[str, bytes, bytes]], batch_sizes: list[int], replay_sizes: list[int],
        data: st.DataObject) -> None:
    check_batch_crash(msgs, batch_sizes, replay_sizes, data, SIZED)


@settings(max_examples=300, deadline=None)
@given(many_dimension_streams(days=12), sizes, sizes, st.data())
def test_a_crash_anywhere_in_a_batch_with_value_slots_ageing_out_is_repaired_by_the_replay(
        msgs: list[tuple[str, bytes, bytes]], batch_sizes: list[int], replay_sizes: list[int],
        data: st.DataObject) -> None:
    check_batch_crash(msgs, batch_sizes, replay_sizes, data, AGING)


@settings(max_examples=300, deadline=None)
@given(many_dimension_streams(days=4), sizes, sizes, st.data())
def test_a_crash_anywhere_in_a_batch_at_the_bound_with_slots_ageing_out_is_repaired(
        msgs: list[tuple[str, bytes, bytes]], batch_sizes: list[int], replay_sizes: list[int],
        data: st.DataObject) -> None:
    check_batch_crash(msgs, batch_sizes, replay_sizes, data, AGING_SIZED)


@settings(max_examples=100, deadline=None)
@given(many_dimension_streams(days=12), sizes)
def test_batches_with_value_slots_ageing_out_give_the_state_of_one_at_a_time(
        msgs: list[tuple[str, bytes, bytes]], batch_sizes: list[int]) -> None:
    one, _ = run(msgs, cfg=AGING)
    assert run_batched(msgs, batch_sizes, cfg=AGING) == one


def test_a_seal_writes_the_earlier_writes_first_and_apart() -> None:
    """Writes put after `seal` come after every write put before it, each part in the
    crash-safe order and coalesced within itself only; reads see the latest."""
    pending = PendingWrites({})
    cap, bucket, st_key = keys.cap_key(0, "plan"), keys.bucket_key(0, 60_000, 0), \
        keys.stream_time_key(0)
    pending.put(0, [(cap, {"a": 1}), (bucket, {"o": 0}), (st_key, {"t": 1})])
    pending.seal(0)
    pending.seal(0)  # nothing new: no empty part
    pending.put(0, [(st_key, {"t": 2}), (cap, {"b": 2})])
    pending.put(1, [(keys.cap_key(1, "plan"), {"c": 3})])
    assert list(pending.ordered(0)) == [(cap, {"a": 1}), (bucket, {"o": 0}), (st_key, {"t": 1}),
                                        (cap, {"b": 2}), (st_key, {"t": 2})]
    assert pending.get(cap) == {"b": 2} and pending.get(st_key) == {"t": 2}
    assert len(pending) == 6 and pending.partitions() == [0, 1]


@settings(max_examples=100, deadline=None)
@given(many_dimension_streams(days=3), sizes)
def test_batches_with_entries_at_their_bound_give_the_state_of_one_at_a_time(
        msgs: list[tuple[str, bytes, bytes]], batch_sizes: list[int]) -> None:
    one, _ = run(msgs, cfg=SIZED)
    assert run_batched(msgs, batch_sizes, cfg=SIZED) == one


@settings(max_examples=100, deadline=None)
@given(many_dimension_streams(), sizes)
def test_batches_with_every_cap_reached_give_the_state_and_notices_of_one_at_a_time(
        msgs: list[tuple[str, bytes, bytes]], batch_sizes: list[int]) -> None:
    one, plans = run(msgs, cfg=CAPPED)
    assert run_batched(msgs, batch_sizes, cfg=CAPPED) == one
    pending = PendingWrites({})
    out = Planned()
    plan_records("surveys", [record(o, k, v) for o, (_, k, v) in enumerate(msgs)], pending,
                 CAPPED, NOW, out, unexpected)
    want = [(n.code, o) for o, p in enumerate(plans) for n in (p.rejection, *p.notices) if n]
    assert [(r.code, msg.offset) for r, msg in out.rejected] == want


def check_batch_crash(msgs: list[tuple[str, bytes, bytes]], batch_sizes: list[int],
                      replay_sizes: list[int], data: st.DataObject, cfg: StepConfig = CFG
                      ) -> None:
    """Run `msgs` in batches, keep a drawn prefix of the writes, replay from a drawn
    committed offset in other batches: the same state, no alert lost."""
    log: list[tuple[str, Any]] = []
    ends: list[int] = []
    clean_alerts: list[tuple[int, dict[str, Any]]] = []
    clean = run_batched(msgs, batch_sizes, log=log, alerts=clean_alerts, ends=ends, cfg=cfg)

    durable = data.draw(st.integers(0, len(log)), label="durable writes")
    complete = sum(1 for e in ends if e <= durable)
    # Faust flushes the producer before committing, so the commit never passes a batch
    # whose writes are not all durable.
    committed = data.draw(st.integers(0, complete), label="committed offset")
    recovered = dict(log[:durable])
    replay_alerts: list[tuple[int, dict[str, Any]]] = []
    final = run_batched(msgs, replay_sizes, state=dict(recovered), start=committed,
                        alerts=replay_alerts, cfg=cfg)

    assert totals(final) == totals(clean)
    assert final == clean
    clean_ids = {a["alert_id"] for _, a in clean_alerts}
    replay_ids = {a["alert_id"] for _, a in replay_alerts}
    assert replay_ids <= clean_ids  # the replay sends no alert the clean run did not
    # No alert is lost: one whose message's customer record is not durable is sent again.
    for offset, alert in clean_alerts:
        rec = recovered.get(keys.customer_key(alert["customer_id"]))
        if rec is None or rec["h"].get("s", -1) < offset:
            assert alert["alert_id"] in replay_ids


def test_ordered_writes_caps_then_buckets_then_journeys_then_customers_then_stream_time() -> None:
    pending = PendingWrites({})
    pending.put(0, [(keys.stream_time_key(0), {"t": 1}), (keys.customer_key("c1"), {"s": {}})])
    pending.put(0, [(keys.bucket_key(0, 60_000, 0), {"o": 0, "s": {}}), (keys.cap_key(0, "plan"), ["pro"]),
                    (keys.bucket_key(0, 60_000, 60_000), {"o": 1, "s": {}})])
    pending.put(0, [(keys.journey_key("c1"), {"v": 3, "j": [], "o": 2})])
    pending.put(0, [(keys.stream_time_key(0), {"t": 2})])  # coalesced: the last value, once
    assert [k for k, _ in pending.ordered(0)] == [
        keys.cap_key(0, "plan"), keys.bucket_key(0, 60_000, 0),
        keys.bucket_key(0, 60_000, 60_000), keys.journey_key("c1"), keys.customer_key("c1"),
        keys.stream_time_key(0)]
    assert dict(pending.ordered(0))[keys.stream_time_key(0)] == {"t": 2}
    assert len(pending) == 6 and pending.partitions() == [0]


def test_reads_see_the_batch_before_the_table() -> None:
    table = {"c|a": 1, "c|b": 2}
    pending = PendingWrites(table)
    pending.put(3, [("c|a", 10)])
    assert (pending.get("c|a"), pending.get("c|b"), pending.get("c|z", "d")) == (10, 2, "d")
    assert table == {"c|a": 1, "c|b": 2}  # nothing written until flushed
    assert list(pending.ordered(1)) == []


KEYS = st.sampled_from([keys.cap_key(0, "plan"), keys.cap_key(0, "region"), keys.customer_key("c1"),
                        keys.customer_key("c2"), keys.bucket_key(0, 60_000, 0),
                        keys.bucket_key(0, 60_000, 60_000), keys.bucket_key(0, 3_600_000, 0),
                        keys.stream_time_key(0)])


@given(st.lists(st.tuples(KEYS, st.integers()), max_size=30))
def test_ordered_is_a_stable_sort_by_kind(puts: list[tuple[str, int]]) -> None:
    pending = PendingWrites({})
    for n in range(0, len(puts), 3):  # in calls of up to three writes
        pending.put(0, puts[n:n + 3])
    latest = dict(puts)
    rank = {keys.CAP: 0, keys.BUCKET: 1, keys.CUSTOMER: 2, keys.STREAM_TIME: 3}
    assert list(pending.ordered(0)) == sorted(latest.items(), key=lambda kv: rank[kv[0][:1]])


def test_a_pending_none_is_a_value() -> None:
    pending = PendingWrites({"c|a": 1})
    pending.put(0, [("c|a", None)])
    assert pending.get("c|a", "default") is None


def test_plan_records_collects_what_the_agent_carries_out() -> None:
    """Outcomes counted per kind, accepted responses per category, the alert, the stream
    time, and rejected records with their reason (never silently dropped)."""
    pending = PendingWrites({})
    out = Planned()
    records = [record(0, b"c1", survey("e1", "c1", 3, BASE)),
               record(1, b"c1", survey("e1", "c1", 3, BASE)),           # the same event again
               record(2, b"c2", survey("e2", "c2", 9, BASE + 60_000)),
               record(3, b"c3", b"not json"),
               record(4, None, survey("e4", "c3", 5, BASE))]           # no key
    plan_records("surveys", records, pending, CFG, NOW, out, unexpected)

    assert out.events == {("surveys", "accepted"): 2, ("surveys", "duplicate"): 1,
                          ("surveys", "deadlettered"): 2}
    assert out.responses == {("nps", "nps", "detractor"): 1, ("nps", "nps", "promoter"): 1}
    assert [(a["kind"], a["customer_id"]) for a in out.alerts] == [("detractor", "c1"),
                                                                   ("promoter", "c2")]
    assert out.advanced == {0: BASE + 60_000}
    assert [(r.code.value, msg.offset) for r, msg in out.rejected] == [
        ("not_json", 3), ("key_mismatch", 4)]
    assert pending.get(keys.customer_key("c2"))["h"] == {"s": 2}


def test_a_record_whose_planning_raises_is_rejected_and_the_rest_planned() -> None:
    class Broken(dict):  # type: ignore[type-arg]
        def get(self, key: str, default: Any = None) -> Any:
            if key == keys.customer_key("c1"):
                raise KeyError("boom")
            return super().get(key, default)

    failures: list[tuple[int, str]] = []
    out = Planned()
    pending = PendingWrites(Broken())
    records = [record(7, b"c1", survey("e1", "c1", 3, BASE)),
               record(8, b"c2", survey("e2", "c2", 3, BASE))]
    plan_records("surveys", records, pending, CFG, NOW, out,
                 lambda msg, exc: failures.append((msg.offset, type(exc).__name__)))

    assert failures == [(7, "KeyError")]
    assert [(r.code.value, msg.offset) for r, msg in out.rejected] == [("processing_error", 7)]
    assert "boom" not in out.rejected[0][0].reason  # the type only: it may quote customer data
    assert out.events == {("surveys", "deadlettered"): 1, ("surveys", "accepted"): 1}
    written = [k for k, _ in pending.ordered(0)]
    assert keys.customer_key("c2") in written and keys.customer_key("c1") not in written


# -- a state of the earlier layout (version 2: the journey inside the customer record) ------
def customer_ids(table: dict[str, Any]) -> set[str]:
    return {k[2:] for k in table if k.startswith((keys.CUSTOMER_PREFIX, keys.JOURNEY_PREFIX))}


def to_version_2(table: dict[str, Any]) -> dict[str, Any]:
    """The same state as version 2 stored it: each customer one record, holding its journey
    as objects and the interactions' offset stamp as `h.i` (an interaction alone made one)."""
    out = {k: v for k, v in table.items()
           if not k.startswith((keys.CUSTOMER_PREFIX, keys.JOURNEY_PREFIX))}
    for cid in customer_ids(table):
        rec, jrec = table.get(keys.customer_key(cid)), table.get(keys.journey_key(cid))
        doc = dict(rec["s"]) if rec else CustomerState.empty(cid).to_json()
        stamps = dict(rec["h"]) if rec else {}
        journey, stamp = journey_from_json(jrec) if jrec else ((), -1)
        doc["v"] = 2
        doc["j"] = [{"id": e[0], "kind": e[1], "at": e[2], "tp": e[3], "ch": e[4], "out": e[5]}
                    for e in journey]
        if jrec:
            stamps["i"] = stamp
        out[keys.customer_key(cid)] = {"s": doc, "h": stamps}
    return out


def canonical(table: dict[str, Any]) -> dict[str, Any]:
    """What a state means, whichever layout holds each customer: per customer its record (in
    this layout), its stamps, its journey and the journey's stamp."""
    out: dict[str, Any] = {k: v for k, v in table.items()
                           if not k.startswith((keys.CUSTOMER_PREFIX, keys.JOURNEY_PREFIX))}
    for cid in customer_ids(table):
        rec, jrec = table.get(keys.customer_key(cid)), table.get(keys.journey_key(cid))
        doc = CustomerState.from_json(rec["s"]) if rec else CustomerState.empty(cid)
        stamps = {k: v for k, v in rec["h"].items() if k != "i"} if rec else {}
        legacy = legacy_journey(rec["s"]) if rec else None
        if jrec:
            journey, stamp = journey_from_json(jrec)
        elif legacy is not None:
            journey, stamp = legacy, rec["h"].get("i", -1)
        else:
            journey, stamp = (), -1
        out[cid] = (doc.to_json(), stamps, list(journey), stamp)
    return out


@settings(max_examples=300, deadline=None)
@given(mixed_streams(), sizes, st.integers(0, 60), st.data())
def test_a_state_of_version_2_is_carried_on_exactly_also_across_a_crash(
        msgs: list[tuple[str, bytes, bytes]], batch_sizes: list[int], cut: int,
        data: st.DataObject) -> None:
    """Workers upgraded mid-stream on the state version 2 wrote: from there, the state means
    what it would had version 3 run throughout (journeys move to their own entries as
    customers come by), and the alerts are the same documents (their recent interactions
    included); also when the upgraded worker crashes and replays."""
    cut = min(cut, len(msgs))
    clean_alerts: list[tuple[int, dict[str, Any]]] = []
    clean = run_batched(msgs, batch_sizes, alerts=clean_alerts)
    old = to_version_2(run_batched(msgs[:cut], batch_sizes))
    assert canonical(old) == canonical(run_batched(msgs[:cut], batch_sizes))

    log: list[tuple[str, Any]] = []
    ends: list[int] = []
    upgraded_alerts: list[tuple[int, dict[str, Any]]] = []
    upgraded = run_batched(msgs, batch_sizes, state=dict(old), log=log, start=cut,
                           alerts=upgraded_alerts, ends=ends)
    assert canonical(upgraded) == canonical(clean)
    assert upgraded_alerts == [(o, a) for o, a in clean_alerts if o >= cut]

    durable = data.draw(st.integers(0, len(log)), label="durable writes")
    complete = sum(1 for e in ends if e <= durable)
    committed = cut + data.draw(st.integers(0, complete), label="committed, past the cut")
    recovered = {**old, **dict(log[:durable])}
    replay_alerts: list[tuple[int, dict[str, Any]]] = []
    final = run_batched(msgs, batch_sizes, state=recovered, start=committed, alerts=replay_alerts)
    assert canonical(final) == canonical(clean)
    # A repeat has the same id; like `detected_at`, its recent interactions may have moved on.
    assert {a["alert_id"] for _, a in replay_alerts} <= {a["alert_id"] for _, a in upgraded_alerts}
