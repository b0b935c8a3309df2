"""The per-message plan: outcomes, ordering, and exact results across simulated crashes.

A crash is modelled the way Kafka gives it to us: the state changelog of a partition keeps a
*prefix* of the writes made (one ordered log), the committed input offset is at or before
the last durable write, and the worker replays the input from that offset.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxstream.core import keys
from cxstream.core.errors import ErrorCode
from cxstream.core.step import Plan, StepConfig, plan
from cxstream.core.timefmt import format_rfc3339

DAY = 86_400_000
BASE = 1_790_000_000_000 // 60_000 * 60_000  # a whole minute in 2026
NOW = BASE + 60 * DAY
CFG = StepConfig(horizon_ms=30 * DAY + 3_600_000)


def survey(eid: str, cid: str, score: int, at: int, survey: str = "nps", **extra: Any) -> bytes:
    doc = {"event_id": eid, "customer_id": cid, "survey": survey, "score": score,
           "occurred_at": format_rfc3339(at), "segment": {"plan": "pro"}, **extra}
    return orjson.dumps(doc)


def run(messages: list[tuple[str, bytes, bytes]], state: dict[str, Any] | None = None,
        log: list[tuple[str, Any]] | None = None, start: int = 0,
        alerts: list[dict[str, Any]] | None = None,
        ends: list[int] | None = None) -> tuple[dict[str, Any], list[Plan]]:
    """Apply messages (kind, key, value) of partition 0 from offset `start`, like the agent.

    `ends[i]` receives the log length after message i: its writes are durable iff the
    durable prefix is at least that long."""
    table = {} if state is None else state
    log = [] if log is None else log
    alerts = [] if alerts is None else alerts
    ends = [] if ends is None else ends
    plans = []
    for offset in range(start, len(messages)):
        kind, key, value = messages[offset]
        p = plan(kind, table, CFG, partition=0, offset=offset, key=key, value=value, now_ms=NOW)
        for k, v in p.before_alert:
            table[k] = v
            log.append((k, v))
        if p.alert is not None:
            alerts.append(p.alert)
        for k, v in p.after_alert:
            table[k] = v
            log.append((k, v))
        ends.append(len(log))
        plans.append(p)
    return table, plans


def test_outcomes_and_dead_letter_codes() -> None:
    msgs = [
        ("surveys", b"c1", survey("e1", "c1", 3, BASE)),
        ("surveys", b"c1", survey("e1", "c1", 3, BASE)),  # duplicate
        ("surveys", b"c1", b"{not json"),
        ("surveys", b"c1", survey("e2", "c1", 11, BASE)),
        ("surveys", b"c2", survey("e3", "c2", 9, BASE + 40 * DAY)),  # advances stream time
        ("surveys", b"c3", survey("e4", "c3", 9, BASE)),  # now 40 days behind: too late
        ("surveys", b"zz", survey("e5", "c4", 9, BASE + 40 * DAY)),  # key mismatch
    ]
    _, plans = run(msgs)
    assert [p.outcome for p in plans] == [
        "accepted", "duplicate", "deadlettered", "deadlettered", "accepted", "too_late", "deadlettered"]
    assert [p.rejection.code if p.rejection else None for p in plans] == [
        None, None, ErrorCode.NOT_JSON, ErrorCode.SCORE_OUT_OF_RANGE, None, ErrorCode.TOO_LATE,
        ErrorCode.KEY_MISMATCH]


def test_alert_comes_before_the_customer_record_that_remembers_it() -> None:
    table: dict[str, Any] = {}
    p = plan("surveys", table, CFG, partition=0, offset=0, key=b"c1",
             value=survey("e1", "c1", 2, BASE), now_ms=NOW)
    assert p.alert is not None and p.alert["kind"] == "detractor"
    assert all(k.startswith(("b|", "v|")) for k, _ in p.before_alert)
    assert keys.customer_key("c1") in dict(p.after_alert)


class CountingView(dict):  # type: ignore[type-arg]
    """A state table that counts the reads of each key."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: dict[str, int] = {}

    def get(self, key: str, default: Any = None) -> Any:
        self.reads[key] = self.reads.get(key, 0) + 1
        return super().get(key, default)


def test_a_response_reads_the_customer_record_once_also_for_its_alert() -> None:
    """The alert's journey comes from the journey entry, or else from the record already
    read (a record of an earlier layout holds it): never from reading the record again."""
    table = CountingView()
    ckey = keys.customer_key("c1")
    for offset, score in enumerate([9, 2]):  # no record yet, then one without a journey
        table.reads.clear()
        p = plan("surveys", table, CFG, partition=0, offset=offset, key=b"c1",
                 value=survey(f"e{offset}", "c1", score, BASE + offset), now_ms=NOW)
        assert table.reads[ckey] == 1
        table.update(p.before_alert + p.after_alert)
    assert p.alert is not None and p.alert["recent_interactions"] == []


def test_replayed_message_changes_nothing() -> None:
    msgs = [("surveys", b"c1", survey("e1", "c1", 2, BASE))]
    table, _ = run(msgs)
    again = plan("surveys", table, CFG, partition=0, offset=0, key=b"c1", value=msgs[0][2], now_ms=NOW)
    assert again.outcome == "replayed" and not again.before_alert and again.alert is None


def totals(table: dict[str, Any]) -> dict[tuple[str, str], list[int]]:
    """(bucket key, segment) -> counts of every stored bucket entry (stamps left out)."""
    return {(k, seg): counts for k, v in table.items() if k.startswith("b|")
            for seg, counts in v["s"].items()}


@st.composite
def streams(draw: st.DrawFn) -> list[tuple[str, bytes, bytes]]:
    rng = random.Random(draw(st.integers(0, 2**32)))
    n = draw(st.integers(5, 60))
    out = []
    for i in range(n):
        cid = f"c{rng.randrange(6)}"
        at = BASE + rng.randrange(0, 45 * DAY, 60_000) + rng.randrange(60_000)
        kind = rng.choice(["nps", "nps", "csat", "ces"])
        score = rng.randrange(0, 11) if kind == "nps" else rng.randrange(1, 6)
        eid = f"e{rng.randrange(n)}"  # collisions give duplicates
        if rng.random() < 0.1:
            out.append(("surveys", cid.encode(), b"garbage"))
        else:
            out.append(("surveys", cid.encode(), survey(eid, cid, score, at, kind,
                                                         touchpoint=rng.choice(["web", "app"]))))
    return out


@settings(max_examples=200, deadline=None)
@given(streams(), st.data())
def test_crash_at_any_point_gives_the_same_state_and_alert_ids(
        msgs: list[tuple[str, bytes, bytes]], data: st.DataObject) -> None:
    check_crash(msgs, data)


def check_crash(msgs: list[tuple[str, bytes, bytes]], data: st.DataObject) -> None:
    """Run `msgs`, keep a drawn prefix of the writes, replay from a drawn committed offset:
    the same state, and every alert whose customer record was lost sent again."""
    log: list[tuple[str, Any]] = []
    ends: list[int] = []
    clean_alerts: list[dict[str, Any]] = []
    clean, plans = run(msgs, log=log, alerts=clean_alerts, ends=ends)

    durable = data.draw(st.integers(0, len(log)), label="durable writes")
    complete = sum(1 for e in ends if e <= durable)  # messages whose writes all survived
    # Faust flushes the producer before committing, so the committed offset never passes them.
    committed = data.draw(st.integers(0, complete), label="committed offset")
    recovered = dict(log[:durable])
    replay_alerts: list[dict[str, Any]] = []
    final, _ = run(msgs, state=recovered, start=committed, alerts=replay_alerts)

    assert totals(final) == totals(clean)
    assert {k: v for k, v in final.items() if not k.startswith("b|")} == \
        {k: v for k, v in clean.items() if not k.startswith("b|")}
    # No alert is lost: every alert whose customer record did not survive is sent again,
    # with the same id; the replay sends no alert the clean run did not.
    clean_ids = [a["alert_id"] for a in clean_alerts]
    replay_ids = [a["alert_id"] for a in replay_alerts]
    assert set(replay_ids) <= set(clean_ids)
    lost = [p.alert["alert_id"] for i, p in enumerate(plans)
            if p.alert and customer_write_end(p, ends[i]) > durable]
    assert set(lost) <= set(replay_ids)


def customer_write_end(p: Plan, end: int) -> int:
    """The log length once plan `p`'s customer record is written (`end`: after all of it)."""
    position = [k for k, _ in p.after_alert].index(keys.customer_key(p.alert["customer_id"]))
    return end - len(p.after_alert) + position + 1


# -- what plans read is never changed: the basis for sharing instead of copying ---------------
@st.composite
def mixed_streams(draw: st.DrawFn) -> list[tuple[str, bytes, bytes]]:
    rng = random.Random(draw(st.integers(0, 2**32)))
    out = []
    for i in range(draw(st.integers(5, 60))):
        cid = f"c{rng.randrange(4)}"
        at = format_rfc3339(BASE + rng.randrange(0, 3 * DAY, 60_000) + rng.randrange(60_000))
        seg = {rng.choice(["plan", "region"]): rng.choice(["pro", "free", "eu", "other"])}
        what = rng.random()
        if what < 0.5:
            doc: dict[str, Any] = {"event_id": f"e{rng.randrange(40)}", "customer_id": cid,
                                   "survey": "nps", "score": rng.randrange(11), "occurred_at": at,
                                   "segment": seg, "touchpoint": rng.choice(["web", "app"])}
            out.append(("surveys", cid.encode(), orjson.dumps(doc)))
        elif what < 0.85:
            doc = {"event_id": f"i{rng.randrange(40)}", "customer_id": cid, "occurred_at": at,
                   "kind": "call", "channel": "phone"}
            out.append(("interactions", cid.encode(), orjson.dumps(doc)))
        else:
            doc = {"customer_id": cid, "segment": seg, "updated_at": at,
                   "owner": {"name": "Ana", "email": "ana@example.com"}}
            out.append(("customers", cid.encode(), orjson.dumps(doc)))
    return out


@settings(max_examples=200, deadline=None)
@given(mixed_streams(), st.data())
def test_crash_with_interactions_and_profiles_gives_the_same_state_and_alerts(
        msgs: list[tuple[str, bytes, bytes]], data: st.DataObject) -> None:
    check_crash(msgs, data)


def frozen(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


@settings(max_examples=200, deadline=None)
@given(mixed_streams())
def test_plans_never_mutate_the_state_they_read_or_wrote(msgs: list[tuple[str, bytes, bytes]]) -> None:
    """Stored values and plans share data (no deep copies per event): so no plan, alert or
    later message may change a value in place."""
    cfg = StepConfig(horizon_ms=CFG.horizon_ms, value_cap=2, journey_length=3)
    table: dict[str, Any] = {}
    written: list[tuple[Any, bytes]] = []
    for offset, (kind, key, value) in enumerate(msgs):
        before = frozen(table)
        p = plan(kind, table, cfg, partition=0, offset=offset, key=key, value=value, now_ms=NOW)
        assert frozen(table) == before
        if p.alert is not None:  # whatever a consumer of the alert does to it
            for v in p.alert.values():
                if isinstance(v, (dict, list)):
                    v.clear()
            assert frozen(table) == before
        for k, v in (*p.before_alert, *p.after_alert):
            written.append((v, frozen(v)))
            table[k] = v
    assert all(frozen(v) == snapshot for v, snapshot in written)


@pytest.mark.parametrize("stored, message", [
    ({"o": 0, "s": {"all": [1, 2, 3]}}, "8 entries"),
    ([1, 0, 0, 0, 0, 0, 0, 0, 0], "not a bucket entry of this release"),  # the earlier layout
    ({"s": {}}, "not a bucket entry of this release"),
])
def test_a_broken_bucket_fails_loudly(stored: Any, message: str) -> None:
    """A stored bucket entry that is not an offset and 8 counters per segment is an error,
    not a guess."""
    bkey = keys.bucket_key(0, 60_000, BASE)
    with pytest.raises(ValueError, match=message):
        plan("surveys", {bkey: stored}, CFG, partition=0, offset=5, key=b"c1",
             value=survey("e1", "c1", 9, BASE), now_ms=NOW)


def test_bucket_keys_are_the_documented_keys() -> None:
    p = plan("surveys", {}, CFG, partition=3, offset=0, key=b"c1",
             value=survey("e1", "c1", 9, BASE + 61_000, touchpoint="web"), now_ms=NOW)
    buckets = [k for k, _ in p.before_alert if k.startswith("b|")]
    assert buckets == [keys.bucket_key(3, res, (BASE + 61_000) // res * res)
                       for res in (60_000, 3_600_000, 86_400_000)]
    one = [1, 0, 0, 0, 0, 0, 0, 0]
    assert all(v == {"o": 0, "s": {"all": one, "plan:pro": one, "touchpoint:web": one}}
               for k, v in p.before_alert if k.startswith("b|"))
