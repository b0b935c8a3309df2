"""Survey programs on the real broker: a history of the built-ins written without a registry
(the layout of earlier releases), then answers of a relationship NPS (target 50), a
transactional NPS (no turns) and a CSAT 1–10 (satisfied 8–10) beside the built-ins, with
duplicates and late answers. Every program's own scores, in every segment and window,
equal a direct count of its answers; no in-scale answer is dead-lettered; unknown programs
and answers off their scale are, with their codes; and a worker whose registry rescales a
program that has data stops before it processes anything, saying why."""

from __future__ import annotations

import base64
import random
import time
from pathlib import Path
from typing import Any

import orjson

from cxstream.core.timefmt import format_rfc3339
from cxstream.core.windows import DAY, HOUR, MINUTE

from ..unit.core import oracle
from .harness import (HORIZON_MS, Worker, metric_samples, produce, read_all, wait_drained,
                      wait_for)

REGISTRY = """
[programs.rnps]
metric = "nps"
target = 50

[programs.tnps]
metric = "nps"
turns = false

[programs.csat-delivery]
metric = "csat"
scale = [1, 10]
satisfied = [8, 10]
target = 80
"""
#: program → (metric, low, high, satisfied range), written from the registry above.
SPEC = {"nps": ("nps", 0, 10, None), "rnps": ("nps", 0, 10, None),
        "tnps": ("nps", 0, 10, None), "csat": ("csat", 1, 5, (4, 5)),
        "csat-delivery": ("csat", 1, 10, (8, 10))}
WINDOWS = {"24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY}


def history(seed: int, n: int, programs: list[str], start: int, end: int, first: int
            ) -> list[dict[str, Any]]:
    """`n` answers of `programs` between `start` and `end`, in rough time order with
    jitter, some far too late, and producer retries (repeated documents)."""
    rng = random.Random(seed)
    docs: list[dict[str, Any]] = []
    for i in range(n):
        program = rng.choice(programs)
        _, low, high, _ = SPEC[program]
        at = start + (end - start) * i // n + rng.randrange(-2 * HOUR, 2 * HOUR)
        if rng.random() < 0.02:
            at -= 35 * DAY
        docs.append({"event_id": f"r{first + i}", "customer_id": f"cust-{rng.randrange(120)}",
                     "survey": program, "score": rng.randint(low, high),
                     "occurred_at": format_rfc3339(min(at, end)),
                     "segment": {"plan": rng.choice(["free", "pro"])},
                     "touchpoint": rng.choice(["support", "delivery"])})
        if rng.random() < 0.04:
            docs.append(docs[rng.randrange(max(0, len(docs) - 50), len(docs))])
    return docs


async def send(w: Worker, docs: list[dict[str, Any]]) -> None:
    await produce(w.bootstrap, f"{w.prefix}surveys",
                  [(d["customer_id"].encode(), orjson.dumps(d)) for d in docs])
    await wait_drained(w.bootstrap, f"{w.prefix}cxstream", [f"{w.prefix}surveys"])


def own_counts(events: list[oracle.Ev], program: str, segment: str, start: int, end: int
               ) -> dict[str, int]:
    """A program's answers in `segment` within [start, end), counted directly."""
    metric, _, _, band = SPEC[program]
    out = {"responses": 0, "a": 0, "b": 0, "c": 0}
    for e in events:
        if e.survey != program or not start <= e.at < end or segment not in oracle.segments_of(e):
            continue
        out["responses"] += 1
        if metric == "nps":
            out["a" if e.score >= 9 else "b" if e.score >= 7 else "c"] += 1
        else:
            assert band is not None
            out["a"] += int(band[0] <= e.score <= band[1])
    return out


def got_counts(row: dict[str, Any], program: str) -> dict[str, int]:
    metric = SPEC[program][0]
    part = row[metric]
    if metric == "nps":
        return {"responses": part["responses"], "a": part["promoters"], "b": part["passives"],
                "c": part["detractors"]}
    return {"responses": part["responses"], "a": part["satisfied"], "b": 0, "c": 0}


async def test_scores_per_program_and_a_rescaled_program_stops_the_worker(
        worker_factory: Any, tmp_path: Path) -> None:
    registry = tmp_path / "surveys.toml"
    registry.write_text(REGISTRY)
    end = int(time.time() * 1000) - 2 * HOUR
    before = history(1, 600, ["nps", "csat"], end - 40 * DAY, end - 20 * DAY, 0)
    after = history(2, 1400, sorted(SPEC), end - 20 * DAY, end, 10_000)
    # Unknown programs, and answers off their program's scale.
    bad = [{**after[i], "event_id": f"bad{i}", "survey": "nps-2019"} for i in range(0, 200, 10)]
    bad += [{**after[i], "event_id": f"off{i}", "survey": "csat-delivery", "score": 11}
            for i in range(5, 200, 20)]

    # The built-ins, as a release without programs writes them; then the registry.
    first: Worker = worker_factory(name="first")
    first.start()
    await first.wait_ready()
    await send(first, before)
    assert first.stop() == 0
    w: Worker = worker_factory(name="programs",
                               extra_env={"CXSTREAM_SURVEYS": str(registry)})
    w.start()
    await w.wait_ready()
    await send(w, after + bad)

    records = await read_all(w.bootstrap, f"{w.prefix}surveys")
    events = [oracle.Ev.of(orjson.loads(r.value), r.partition, r.offset) for r in records]
    bad_ids = {d["event_id"] for d in bad}
    valid = [e for e in events if e.event_id not in bad_ids]
    good = oracle.accepted(valid, HORIZON_MS)

    # Dead letters: exactly the unknown programs and the answers off their scale.
    letters = [orjson.loads(r.value) for r in await read_all(w.bootstrap, f"{w.prefix}deadletter")]
    by_code: dict[str, set[str]] = {}
    for d in letters:
        if d["error_code"] in ("unknown_survey", "score_out_of_range"):
            payload = orjson.loads(base64.b64decode(d["payload"]))
            by_code.setdefault(d["error_code"], set()).add(payload["event_id"])
    assert by_code == {"unknown_survey": {d["event_id"] for d in bad if d["survey"] == "nps-2019"},
                       "score_out_of_range": {d["event_id"] for d in bad
                                              if d["survey"] == "csat-delivery"}}
    assert not {d["error_code"] for d in letters} - {"unknown_survey", "score_out_of_range",
                                                     "too_late"}

    # Every program's own scores, every segment, three windows and two instants.
    stream_time = max(oracle.stream_times(valid, HORIZON_MS).values())
    top = stream_time - stream_time % MINUTE + MINUTE
    segments = sorted(oracle.all_segments(good))
    checked = 0
    for program in SPEC:
        for window, span in WINDOWS.items():
            for as_of in (top, top - 9 * DAY - 13 * MINUTE)[:1 if window == "30d" else 2]:
                status, body = await w.get("/scores", window=window, program=program,
                                           as_of=format_rfc3339(as_of))
                assert status == 200, body
                rows = {row["segment"]: row for row in body["segments"]}
                for segment in segments:
                    want = own_counts(good, program, segment, as_of - span, as_of)
                    got = (got_counts(rows[segment], program) if segment in rows
                           else {"responses": 0, "a": 0, "b": 0, "c": 0})
                    assert got == want, (program, window, format_rfc3339(as_of), segment)
                    checked += 1
    status, body = await w.get("/scores/all", window="30d", program="csat-delivery",
                               as_of=format_rfc3339(top))
    assert status == 200 and body["scale"] == [1, 10] and body["target"] == 80, body
    assert body["meets_target"] == (body["csat"]["score"] >= 80), body
    assert sum(1 for e in good if e.survey == "csat-delivery") > 100
    # The response counter by program: the answers this worker accepted (after the first).
    responses = metric_samples(await w.metrics(), "cxstream_responses_total")
    counted: dict[str, float] = {}
    for labels, n in responses.items():
        program = dict(labels)["program"]
        counted[program] = counted.get(program, 0) + n
    mine = [e for e in good if e.event_id.startswith("r") and int(e.event_id[1:]) >= 10_000]
    assert counted == {p: sum(1 for e in mine if e.survey == p) for p in SPEC}, counted
    print(f"{checked} program, segment, window and instant rows equal the direct count; "
          f"{len(letters)} dead letters")

    # A registry that rescales a program with data: the worker stops, saying why.
    assert w.stop() == 0
    registry.write_text(REGISTRY.replace("scale = [1, 10]\nsatisfied = [8, 10]",
                                         "scale = [1, 5]\nsatisfied = [4, 5]"))
    w.start()
    await send_only(w, history(3, 60, ["nps"], end - HOUR, end, 90_000))

    async def exited() -> bool:
        return w.proc is not None and w.proc.poll() is not None

    await wait_for(exited, 120, "the worker to stop on a rescaled program")
    assert w.proc is not None and w.proc.returncode != 0, w.log_tail()
    log = w.log_tail(400)
    assert "csat-delivery: counted as csat 1..10, now csat 1..5" in log, log
    assert "'Changing a program' in docs/concepts/programs.md" in log, log


async def send_only(w: Worker, docs: list[dict[str, Any]]) -> None:
    await produce(w.bootstrap, f"{w.prefix}surveys",
                  [(d["customer_id"].encode(), orjson.dumps(d)) for d in docs])


def test_the_registry_spec_here_is_the_registry_file() -> None:
    """SPEC, written by hand for the oracle, says what the file says."""
    import tomllib

    doc = tomllib.loads(REGISTRY)["programs"]
    assert doc["csat-delivery"]["scale"] == [1, 10] and SPEC["csat-delivery"][1:3] == (1, 10)
    assert tuple(doc["csat-delivery"]["satisfied"]) == SPEC["csat-delivery"][3]
