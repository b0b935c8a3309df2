"""Survey programs in the step: every answer counts, with its program's ranges, under the
plain segment keys (the metric-level sums) and, for a program other than the built-ins,
under keys of its own; only programs with `turns` move a customer's NPS state. Checked
against a direct count of the answers, with late, duplicate and out-of-order ones, and
across a crash at every point."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from cxstream.core import keys
from cxstream.core.programs import BUILTINS, Registry, define
from cxstream.core.step import StepConfig, with_programs
from cxstream.core.windows import DAY

from . import oracle
from .test_step import BASE, CFG, check_crash, run, survey

#: Beside the built-ins: a relationship NPS that drives turns, a transactional one that
#: does not, a CSAT 1–10 (satisfied 8–10), a CES 1–7 (high effort 6–7) and a CES 1–7 on
#: which 1 is the most effort.
REGISTRY = Registry([*BUILTINS, define("rnps", "nps", target=50),
                     define("tnps", "nps", turns=False),
                     define("csat-delivery", "csat", scale=[1, 10], satisfied=[8, 10]),
                     define("ces-checkout", "ces", scale=[1, 7], high_effort=[6, 7]),
                     define("ces-agree", "ces", scale=[1, 7], high_effort=[1, 2])])
PROGRAMS = with_programs(CFG, REGISTRY)
#: Written straight from the definitions above, not from `Program`: (metric, low, high,
#: the satisfied or high-effort range, own keys).
SPEC: dict[str, tuple[str, int, int, tuple[int, int] | None, bool]] = {
    "nps": ("nps", 0, 10, None, False), "rnps": ("nps", 0, 10, None, True),
    "tnps": ("nps", 0, 10, None, True), "csat": ("csat", 1, 5, (4, 5), False),
    "csat-delivery": ("csat", 1, 10, (8, 10), True), "ces": ("ces", 1, 5, (4, 5), False),
    "ces-checkout": ("ces", 1, 7, (6, 7), True), "ces-agree": ("ces", 1, 7, (1, 2), True),
}


def counts_of(program: str, score: int) -> list[int]:
    """The eight counters of `cxstream.core.scoring` for one answer, computed directly."""
    metric, _, _, band, _ = SPEC[program]
    out = [0] * 8
    if metric == "nps":
        out[0 if score >= 9 else 1 if score >= 7 else 2] = 1
    elif metric == "csat":
        assert band is not None
        out[3], out[4] = 1, int(band[0] <= score <= band[1])
    else:
        assert band is not None
        out[5], out[6], out[7] = 1, score, int(band[0] <= score <= band[1])
    return out


@st.composite
def program_streams(draw: st.DrawFn) -> list[tuple[str, bytes, bytes]]:
    """Answers of every program, in and around each scale's ends, over 40 days (late ones
    included), with repeats of earlier messages (duplicates)."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    out: list[tuple[str, bytes, bytes]] = []
    for i in range(draw(st.integers(1, 50))):
        if out and rng.random() < 0.1:
            out.append(rng.choice(out))
            continue
        program = rng.choice(sorted(SPEC))
        _, low, high, _, _ = SPEC[program]
        cid = f"c{rng.randrange(5)}"
        at = BASE + rng.randrange(0, 40 * DAY, 60_000) + rng.randrange(60_000)
        seg = {"plan": rng.choice(["pro", "free"])} if rng.random() < 0.7 else {}
        out.append(("surveys", cid.encode(), survey(f"e{i}", cid, rng.randint(low, high), at,
                                                     survey=program, segment=seg)))
    return out


def stored_totals(table: dict[str, Any]) -> dict[str, list[int]]:
    """Counts per key summed over every minute bucket of the table."""
    out: dict[str, list[int]] = {}
    for key, entry in table.items():
        if key.startswith("b|") and keys.parse_bucket_key(key)[1] == 60_000:
            for seg, counts in entry["s"].items():
                total = out.setdefault(seg, [0] * 8)
                for n, c in enumerate(counts):
                    total[n] += c
    return out


@settings(max_examples=200, deadline=None)
@given(program_streams())
def test_answers_count_per_program_and_per_metric_as_counted_directly(
        msgs: list[tuple[str, bytes, bytes]]) -> None:
    table, plans = run(msgs, cfg=PROGRAMS)
    assert all(p.outcome != "deadlettered" for p in plans)  # every scale is accepted
    events = [oracle.Ev.of(orjson.loads(v), 0, o) for o, (_, _, v) in enumerate(msgs)]
    want: dict[str, list[int]] = {}
    for e in oracle.accepted(events, PROGRAMS.horizon_ms):
        own = SPEC[e.survey][4]
        for seg in oracle.segments_of(e):
            for key in ([seg, f"{e.survey}/{seg}"] if own else [seg]):
                total = want.setdefault(key, [0] * 8)
                for n, c in enumerate(counts_of(e.survey, e.score)):
                    total[n] += c
    assert stored_totals(table) == want


@settings(max_examples=200, deadline=None)
@given(program_streams())
def test_only_programs_with_turns_move_the_customers_nps(
        msgs: list[tuple[str, bytes, bytes]]) -> None:
    """A customer's NPS state is their latest answer (by occurred_at) of a program that
    drives turns; each alert names that answer's program."""
    alerts: list[dict[str, Any]] = []
    table, _ = run(msgs, cfg=PROGRAMS, alerts=alerts)
    events = [oracle.Ev.of(orjson.loads(v), 0, o) for o, (_, _, v) in enumerate(msgs)]
    latest: dict[str, oracle.Ev] = {}
    for e in oracle.accepted(events, PROGRAMS.horizon_ms):
        if e.survey in ("nps", "rnps"):
            best = latest.get(e.customer_id)
            if best is None or (e.at, e.event_id) > (best.at, best.event_id):
                latest[e.customer_id] = e
    for cid in {e.customer_id for e in events}:
        rec = table.get(keys.customer_key(cid))
        nps = None if rec is None else rec["s"]["n"]
        want = latest.get(cid)
        assert (nps and nps["id"]) == (want and want.event_id), cid
        if want is not None and want.survey != "nps":
            assert nps["p"] == want.survey
    for alert in alerts:  # at_risk: of a csat or ces program
        assert alert["program"] in (("nps", "rnps") if alert["kind"] != "at_risk" else
                                    ("csat", "csat-delivery", "ces", "ces-checkout", "ces-agree"))


@settings(max_examples=200, deadline=None)
@given(program_streams(), st.data())
def test_crash_at_any_point_with_programs_gives_the_same_state(
        msgs: list[tuple[str, bytes, bytes]], data: st.DataObject) -> None:
    check_crash(msgs, data, PROGRAMS, TURNS)
    check_crash(msgs, data, replace(PROGRAMS, at_risk=False), TURNS)


#: The programs as the turn oracle takes them (`oracle.Program`: the last item is `turns`).
TURNS: dict[str, oracle.Program] = {
    k: (m, low, high, band, k in ("nps", "rnps")) for k, (m, low, high, band, _) in SPEC.items()}


def test_state_of_the_earlier_layout_reads_as_the_built_ins() -> None:
    """With the built-ins only (no registry file), nothing is written under a program's own
    keys and customer entries keep their layout: state of earlier releases is this one."""
    msgs = [("surveys", b"c1", survey("e1", "c1", 3, BASE, survey="nps")),
            ("surveys", b"c1", survey("e2", "c1", 4, BASE + 60_000, survey="csat"))]
    table, _ = run(msgs, cfg=StepConfig(horizon_ms=CFG.horizon_ms))
    assert all("/" not in seg for seg in stored_totals(table))
    rec = table[keys.customer_key("c1")]["s"]
    assert "p" not in rec["n"] and "p" not in rec["cs"]
