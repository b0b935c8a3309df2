"""The per-message plan: outcomes, ordering, and exact results across simulated crashes.

A crash is modelled the way Kafka gives it to us: the state changelog of a partition keeps a
*prefix* of the writes made (one ordered log), the committed input offset is at or before
the last durable write, and the worker replays the input from that offset.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxstream.core import keys
from cxstream.core.errors import ErrorCode
from cxstream.core.step import Plan, StepConfig, plan
from cxstream.core.timefmt import format_rfc3339

from . import oracle

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
        ends: list[int] | None = None, cfg: StepConfig = CFG) -> tuple[dict[str, Any], list[Plan]]:
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
        p = plan(kind, table, cfg, partition=0, offset=offset, key=key, value=value, now_ms=NOW)
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


def test_the_configured_priority_rules_and_the_profiles_value_reach_the_alert() -> None:
    from cxstream.config.priority import parse_rules
    from cxstream.core.priority import PriorityRules

    prof = orjson.dumps({"customer_id": "c1", "segment": {"plan": "pro"},
                         "updated_at": format_rfc3339(BASE),
                         "value": {"tier": "standard", "arr": 5000, "currency": "EUR"}})
    msgs = [("customers", b"c1", prof), ("surveys", b"c1", survey("e1", "c1", 2, BASE + 1)),
            ("surveys", b"c2", survey("e2", "c2", 2, BASE + 2, comment="Billing!"))]
    alerts: list[dict[str, Any]] = []
    run(msgs, alerts=alerts)  # the default rules
    assert [(a["priority"], a["value"]) for a in alerts] == [
        ("normal", {"tier": "standard", "arr": 5000, "currency": "EUR"}), ("high", None)]
    alerts.clear()
    rules = PriorityRules(parse_rules("arr>=5000:low"), frozenset({"refund"}))
    run(msgs, alerts=alerts, cfg=replace(CFG, priority=rules))
    assert [a["priority"] for a in alerts] == ["low", "normal"]


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


def check_crash(msgs: list[tuple[str, bytes, bytes]], data: st.DataObject,
                cfg: StepConfig = CFG,
                programs: dict[str, oracle.Program] = oracle.BUILTIN_PROGRAMS) -> None:
    """Run `msgs`, keep a drawn prefix of the writes, replay from a drawn committed offset:
    the same state, and every alert whose customer record was lost sent again."""
    log: list[tuple[str, Any]] = []
    ends: list[int] = []
    clean_alerts: list[dict[str, Any]] = []
    clean, plans = run(msgs, log=log, alerts=clean_alerts, ends=ends, cfg=cfg)
    assert_alerts_equal_the_oracle(msgs, plans, clean_alerts, cfg, programs)

    durable = data.draw(st.integers(0, len(log)), label="durable writes")
    complete = sum(1 for e in ends if e <= durable)  # messages whose writes all survived
    # Faust flushes the producer before committing, so the committed offset never passes them.
    committed = data.draw(st.integers(0, complete), label="committed offset")
    recovered = dict(log[:durable])
    replay_alerts: list[dict[str, Any]] = []
    final, _ = run(msgs, state=recovered, start=committed, alerts=replay_alerts, cfg=cfg)

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


def assert_alerts_equal_the_oracle(msgs: list[tuple[str, bytes, bytes]], plans: list[Plan],
                                   alerts: list[dict[str, Any]], cfg: StepConfig,
                                   programs: dict[str, oracle.Program]) -> None:
    """The customer alerts of a clean run are exactly the brute-force oracle's turns, in
    order (`oracle.customer_turns`, from the responses that decode). Skipped when a response
    was refused as `entry_too_large`, or when an event id came back as a new response after
    the customer forgot it (older than the horizon): the oracle models neither."""
    if any(p.rejection is not None and p.rejection.code == ErrorCode.ENTRY_TOO_LARGE
           for p in plans):
        return
    ids = [(key, orjson.loads(value)["event_id"]) for (kind, key, value), p in zip(msgs, plans)
           if kind == "surveys" and p.outcome == "accepted"]
    if len(set(ids)) != len(ids):
        return
    evs = [oracle.Ev.of(orjson.loads(value), 0, offset)
           for offset, ((kind, _, value), p) in enumerate(zip(msgs, plans))
           if kind == "surveys" and p.outcome != "deadlettered"]
    want = oracle.customer_turns(evs, cfg.horizon_ms, programs, risk=cfg.at_risk)
    got = [((a["customer_id"], a["survey_event_id"]), (a["kind"], a["previous_category"]))
           for a in alerts]
    assert got == list(want.items())


def customer_write_end(p: Plan, end: int) -> int:
    """The log length once plan `p`'s customer record is written (`end`: after all of it)."""
    position = [k for k, _ in p.after_alert].index(keys.customer_key(p.alert["customer_id"]))
    return end - len(p.after_alert) + position + 1


#: Small caps, so that streams of a few dozen responses reach every one of them.
CAPPED = StepConfig(horizon_ms=CFG.horizon_ms, value_cap=2, max_dims=3, max_response_dims=3)


@st.composite
def many_dimension_streams(draw: st.DrawFn, days: int = 45) -> list[tuple[str, bytes, bytes]]:
    """Responses with up to 5 dimensions of 8 and values of 4, over `days` days: the value,
    dimension and per-response caps of `CAPPED` are all reached."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    out: list[tuple[str, bytes, bytes]] = []
    for i in range(draw(st.integers(5, 60))):
        if out and rng.random() < 0.1:  # the same message again: a duplicate
            out.append(rng.choice(out))
            continue
        cid = f"c{rng.randrange(6)}"
        at = BASE + rng.randrange(0, days * DAY, 60_000) + rng.randrange(60_000)
        seg = {f"d{rng.randrange(8)}": rng.choice(["a", "b", "c", "other"])
               for _ in range(rng.randrange(5))}
        extra = {"touchpoint": rng.choice(["web", "app"])} if rng.random() < 0.5 else {}
        out.append(("surveys", cid.encode(), survey(f"e{i}", cid, rng.randrange(11), at,
                                                     segment=seg, **extra)))
    return out


@settings(max_examples=200, deadline=None)
@given(many_dimension_streams(), st.data())
def test_crash_at_any_point_with_every_cap_reached_gives_the_same_state(
        msgs: list[tuple[str, bytes, bytes]], data: st.DataObject) -> None:
    check_crash(msgs, data, CAPPED)


#: As `CAPPED`, with a horizon of two days over streams of twelve: value slots age out.
AGING = StepConfig(horizon_ms=2 * DAY, value_cap=2, max_dims=3, max_response_dims=3)


@settings(max_examples=200, deadline=None)
@given(many_dimension_streams(days=12), st.data())
def test_crash_at_any_point_with_value_slots_ageing_out_gives_the_same_state(
        msgs: list[tuple[str, bytes, bytes]], data: st.DataObject) -> None:
    check_crash(msgs, data, AGING)


def test_junk_holds_value_slots_only_while_responses_carry_it() -> None:
    """Junk fills every slot of a dimension; while it is in the horizon a real new value
    counts as `other` (and says so); once no response carried the junk for the horizon, the
    real value takes a slot, dropping the dead ones first, in a part of its own (`seal`).
    A value of an entry of the earlier layout (a list) holds its slot as last seen at the
    start of the horizon, and the entry is rewritten in this layout."""
    cfg = StepConfig(horizon_ms=2 * DAY, value_cap=3)

    def msg(i: int, value: str, at: int) -> tuple[str, bytes, bytes]:
        return "surveys", f"c{i}".encode(), survey(f"e{i}", f"c{i}", 9, at,
                                                   segment={"plan": value})

    day = BASE // DAY
    junk = [msg(i, f"junk-{i}", BASE + i * 60_000) for i in range(3)]
    table, plans = run([*junk, msg(3, "pro", BASE + DAY), msg(4, "pro", BASE + 3 * DAY),
                        msg(5, "pro", BASE + 4 * DAY)], cfg=cfg)
    assert [p.folded for p in plans] == [(), (), (), ("plan",), (), ()]
    assert [n.code for n in plans[3].notices] == [ErrorCode.SEGMENT_VALUE_CAPPED]
    assert [p.seal for p in plans] == [False, False, False, False, True, False]
    assert table[keys.cap_key(0, "plan")] == {"pro": day + 4}  # seen again: a later day
    assert "plan:pro" in table[keys.bucket_key(0, DAY, (BASE + 3 * DAY) // DAY * DAY)]["s"]

    old = {keys.cap_key(0, "plan"): ["a", "b", "c"],
           keys.stream_time_key(0): {"t": BASE}}
    table, plans = run([msg(0, "a", BASE), msg(1, "d", BASE + 60_000),
                        msg(2, "d", BASE + DAY)], state=old, cfg=cfg)
    assert [p.folded for p in plans] == [(), ("plan",), ()]
    live_from = (BASE - 2 * DAY) // DAY
    assert dict(plans[0].before_alert)[keys.cap_key(0, "plan")] == {
        "a": day, "b": live_from, "c": live_from}
    # "b" and "c" are dead once stream time moves a day on: "d" takes a slot.
    assert plans[2].seal and table[keys.cap_key(0, "plan")] == {"a": day, "d": day + 1}


@settings(max_examples=100, deadline=None)
@given(many_dimension_streams())
def test_segments_and_notices_under_the_caps_equal_the_oracle(
        msgs: list[tuple[str, bytes, bytes]]) -> None:
    check_caps_against_oracle(msgs, CAPPED)


@settings(max_examples=150, deadline=None)
@given(many_dimension_streams(days=12))
def test_segments_and_notices_with_value_slots_ageing_out_equal_the_oracle(
        msgs: list[tuple[str, bytes, bytes]]) -> None:
    check_caps_against_oracle(msgs, AGING)


def check_caps_against_oracle(msgs: list[tuple[str, bytes, bytes]], cfg: StepConfig) -> None:
    """Every accepted response counts exactly in the oracle's segments under the value,
    dimension and per-response caps; each one that left a dimension out, or folded a value,
    says so in its notices (`too_many_dimensions`, `segment_value_capped`). No value cap
    entry holds more slots than the cap."""
    table, plans = run(msgs, cfg=cfg)
    events = [oracle.Ev.of(orjson.loads(value), 0, offset)
              for offset, (_, _, value) in enumerate(msgs)]
    caps = {"cap": cfg.value_cap, "max_dims": cfg.max_dims,
            "max_response_dims": cfg.max_response_dims}
    want = oracle.capped_segments(events, cfg.horizon_ms, **caps)
    folded = oracle.folds(events, cfg.horizon_ms, **caps)
    left = oracle.uncounted_dimensions(events, cfg.horizon_ms, **caps)
    for offset, p in enumerate(plans):
        codes = [n.code for n in p.notices]
        if p.outcome != "accepted":
            assert (0, offset) not in want and not codes
            continue
        minute = keys.bucket_key(0, 60_000, events[offset].at // 60_000 * 60_000)
        assert set(p.folded) == folded.get((0, offset), set())
        assert (ErrorCode.SEGMENT_VALUE_CAPPED in codes) == bool(p.folded)
        assert (ErrorCode.TOO_MANY_DIMENSIONS in codes) == ((0, offset) in left)
        assert len(codes) == len(set(codes)) or codes.count(ErrorCode.TOO_MANY_DIMENSIONS) == 1
        assert want[(0, offset)] <= set(table[minute]["s"])
    dims = table.get(keys.dimensions_key(0), {})
    assert len(dims) <= cfg.max_dims
    assert all(len(table[k]) <= cfg.value_cap for k in table if k.startswith("v|0|"))


#: As `CAPPED`, with day entries bounded to a few segments: `entry_too_large` is reached.
SIZED = StepConfig(horizon_ms=CFG.horizon_ms, value_cap=2, max_dims=3, max_response_dims=3,
                   entry_max_bytes=1_300)


#: `SIZED` with value slots ageing out (over streams of four days): the mark of an
#: `entry_too_large` matters on replay.
AGING_SIZED = replace(SIZED, horizon_ms=DAY, entry_max_bytes=1_000)


@settings(max_examples=200, deadline=None)
@given(many_dimension_streams(days=4), st.data())
def test_crash_at_any_point_with_entries_at_their_bound_and_slots_ageing_out(
        msgs: list[tuple[str, bytes, bytes]], data: st.DataObject) -> None:
    check_crash(msgs, data, AGING_SIZED)


@settings(max_examples=200, deadline=None)
@given(many_dimension_streams(days=3), st.data())
def test_crash_at_any_point_with_entries_at_their_bound_gives_the_same_state(
        msgs: list[tuple[str, bytes, bytes]], data: st.DataObject) -> None:
    check_crash(msgs, data, SIZED)


@settings(max_examples=150, deadline=None)
@given(many_dimension_streams(days=3))
def test_entry_too_large_equals_the_oracle_and_changes_no_count(
        msgs: list[tuple[str, bytes, bytes]]) -> None:
    check_sized(msgs, SIZED)


@settings(max_examples=150, deadline=None)
@given(many_dimension_streams(days=4))
def test_entry_too_large_with_value_slots_ageing_out_equals_the_oracle(
        msgs: list[tuple[str, bytes, bytes]]) -> None:
    check_sized(msgs, AGING_SIZED)


def check_sized(msgs: list[tuple[str, bytes, bytes]], cfg: StepConfig) -> None:
    """A response that would grow its day's entry past the bound is rejected
    (`entry_too_large`) and changes nothing but its value and dimension slots and the stream
    time (which every response that is not too late moves): the same responses as the
    oracle's are counted, in the same segments, the stream time is the oracle's, and no
    stored bucket entry ever encodes to more than the bound, even with every counter at its
    widest."""
    table, plans = run(msgs, cfg=cfg)
    events = [oracle.Ev.of(orjson.loads(value), 0, offset)
              for offset, (_, _, value) in enumerate(msgs)]
    counted, rejected = oracle.sized(events, cfg.horizon_ms, cap=cfg.value_cap,
                                     max_dims=cfg.max_dims,
                                     max_response_dims=cfg.max_response_dims,
                                     bound=cfg.entry_max_bytes)
    got_rejected = {(0, o) for o, p in enumerate(plans)
                    if p.rejection is not None and p.rejection.code is ErrorCode.ENTRY_TOO_LARGE}
    assert got_rejected == rejected
    assert {(0, o) for o, p in enumerate(plans) if p.outcome == "accepted"} == set(counted)
    for o, p in enumerate(plans):
        if (0, o) in rejected:
            assert p.alert is None
            assert all(k.startswith("v|") for k, _ in p.before_alert)
            # The stream time, marked with the offset: a replay skips the message.
            [(key, mark)] = p.after_alert
            assert key == keys.stream_time_key(0) and mark["r"] == o
            assert p.stream_time is None or mark["t"] == p.stream_time
    assert table[keys.stream_time_key(0)]["t"] == oracle.stream_times(events, cfg.horizon_ms)[0]
    widest = 10**19 + 1
    for key, entry in table.items():
        if key.startswith("b|"):
            assert len(orjson.dumps(entry)) <= cfg.entry_max_bytes
            wide = {"o": widest, "s": {seg: [widest] * 8 for seg in entry["s"]}}
            assert len(orjson.dumps(wide)) <= cfg.entry_max_bytes
    for (_, offset), segs in counted.items():
        minute = keys.bucket_key(0, 60_000, events[offset].at // 60_000 * 60_000)
        assert segs <= set(table[minute]["s"])


def test_a_response_too_large_then_skipped_on_replay_moves_the_stream_time_alike() -> None:
    """Offset 5 is `entry_too_large`; offset 6, a duplicate of the same customer, stamps its
    record past it. A replay then skips offset 5 as already processed (`replayed`) and
    takes the max with its `occurred_at`: the clean run must have moved the stream time to
    it too, or the two runs end apart, whatever crash came in between."""
    day = 1_790_121_600_000  # a UTC day within the decoder's bounds (NOW is after it)

    def msg(eid: str, cid: str, score: int, at: int, seg: dict[str, str]
            ) -> tuple[str, bytes, bytes]:
        return "surveys", cid.encode(), survey(eid, cid, score, day + at, segment=seg)

    first = msg("e0", "c5", 10, 45_831_626, {"d5": "b", "d0": "c"})
    fourth = msg("e4", "c2", 8, 64_728_275, {"d6": "other", "d0": "b", "d5": "a"})
    msgs = [first, first, first, msg("e3", "c3", 4, 41_850_227, {"d1": "c", "d5": "c"}),
            fourth, msg("e5", "c2", 4, 81_634_836, {"d6": "b", "d7": "c", "d0": "other"}),
            fourth]
    log: list[tuple[str, Any]] = []
    ends: list[int] = []
    clean, plans = run(msgs, log=log, ends=ends, cfg=SIZED)
    assert [p.rejection.code if p.rejection else p.outcome for p in plans] == [
        "accepted", "duplicate", "duplicate", "accepted", "accepted",
        ErrorCode.ENTRY_TOO_LARGE, "duplicate"]
    assert clean[keys.stream_time_key(0)] == {"t": day + 81_634_836, "r": 6}
    for durable in range(len(log) + 1):
        for committed in range(sum(1 for e in ends if e <= durable) + 1):
            final, _ = run(msgs, state=dict(log[:durable]), start=committed, cfg=SIZED)
            assert final == clean, (durable, committed)


def worst_text(n: int) -> str:
    """`n` characters that each take 6 bytes in JSON (escaped control characters)."""
    return "\x01" * n


def test_the_estimates_of_customer_records_and_journeys_bound_their_widest() -> None:
    """`_checked` measures a customer record or journey only when an estimate from its
    number of ids or interactions passes the bound: the estimates must hold for every
    field at the decoder's longest, of the widest characters."""
    from cxstream.core import step

    ident, label = worst_text(128), worst_text(64)
    seg = {f"d{i:02d}".ljust(64, "x"): worst_text(128) for i in range(16)}
    nps = {"id": ident, "score": 10, "cat": "promoter", "at": 10**13, "tp": label,
           "ch": label, "cmt": worst_text(4000), "seg": seg}
    small = {"id": ident, "score": 5, "at": 10**13}
    profile = {"seg": seg, "owner": {"name": worst_text(128), "email": worst_text(254),
                                     "slack": worst_text(128)}, "at": 10**13,
               "value": {"tier": "strategic", "arr": -1.7976931348623157e308, "currency": "XXX"}}
    seen = {worst_text(127) + chr(65 + i % 26) * 1 + str(i): 10**13 for i in range(50)}
    record = {"s": {"v": 3, "id": ident, "n": nps, "cs": small, "ce": small, "p": profile,
                    "s": seen}, "h": {"s": 10**12, "c": 10**12, "i": 10**12}}
    assert len(orjson.dumps(record)) <= step.CUSTOMER_MAX_FIXED + len(seen) * step.SEEN_ID_MAX
    entry = [ident, label, 10**13, label, label, label]
    journey = {"v": 3, "j": [entry] * 20, "o": 10**12}
    assert len(orjson.dumps(journey)) <= step.JOURNEY_MAX_FIXED + 20 * step.JOURNEY_ENTRY_MAX
    # And the cap entries at their fullest fit the bound `fitted` leaves them.
    cfg = step.fitted(StepConfig(horizon_ms=CFG.horizon_ms, value_cap=10_000, max_dims=10_000,
                                 entry_max_bytes=100_000))
    assert len(orjson.dumps(sorted(worst_text(127) + str(i) for i in range(cfg.value_cap)))) \
        <= cfg.entry_max_bytes
    assert len(orjson.dumps({f"d{i}".ljust(64, "x"): 10**19 for i in range(cfg.max_dims)})) \
        <= cfg.entry_max_bytes
    assert step.fitted(CFG) is CFG


def test_a_customer_record_past_the_bound_rejects_the_response_and_counts_nothing() -> None:
    cfg = StepConfig(horizon_ms=CFG.horizon_ms, entry_max_bytes=2_000)
    table: dict[str, Any] = {}
    outcomes = []
    for i in range(40):  # each response adds a remembered id to the customer's record
        p = plan("surveys", table, cfg, partition=0, offset=i, key=b"c1",
                 value=survey(f"event-{i:04d}-" + "x" * 40, "c1", 9, BASE + i), now_ms=NOW)
        outcomes.append(p.rejection.code if p.rejection else p.outcome)
        if p.rejection is not None:  # it moves the stream time, and changes nothing else
            assert p.before_alert == [] and p.alert is None
            assert p.after_alert == [(keys.stream_time_key(0), {"t": BASE + i, "r": i})]
        table.update(p.before_alert + p.after_alert)
    first = outcomes.index(ErrorCode.ENTRY_TOO_LARGE)
    assert 5 < first and set(outcomes[first:]) == {ErrorCode.ENTRY_TOO_LARGE}
    assert len(orjson.dumps(table[keys.customer_key("c1")])) <= 2_000
    assert len(table[keys.customer_key("c1")]["s"]["s"]) == first


def test_a_customer_record_past_the_bound_then_stamped_on_replays_alike() -> None:
    """As above, then a duplicate of the customer's first response: it stamps the record
    past the rejected ones, which a replay then skips (`replayed`), taking the max with
    their `occurred_at`. Every crash point and committed offset ends in the clean state."""
    cfg = StepConfig(horizon_ms=CFG.horizon_ms, entry_max_bytes=1_000)
    msgs = [("surveys", b"c1", survey(f"event-{i:04d}-" + "x" * 40, "c1", 9, BASE + i))
            for i in range(14)]
    msgs.append(msgs[0])
    log: list[tuple[str, Any]] = []
    ends: list[int] = []
    clean, plans = run(msgs, log=log, ends=ends, cfg=cfg)
    assert [p.rejection is not None for p in plans[-4:]] == [True, True, True, False]
    assert plans[-1].outcome == "duplicate"
    assert clean[keys.stream_time_key(0)] == {"t": BASE + 13, "r": 14}
    for durable in range(len(log) + 1):
        complete = sum(1 for e in ends if e <= durable)
        for committed in {0, complete // 2, complete}:
            final, _ = run(msgs, state=dict(log[:durable]), start=committed, cfg=cfg)
            assert final == clean, (durable, committed)


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
