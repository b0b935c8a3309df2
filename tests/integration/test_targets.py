"""Segment targets on the real broker: a history of eight hours over three programs (an rNPS
with target 50, a tNPS without one, a CSAT 1–10 with satisfied 8–10 and target 80), in which
one region's scores fall below their targets for two hours and come back, written to four
partitions, with producer retries (repeated documents) and answers a little out of order.

The `below_target` / `back_on_target` alerts on the alert topic are exactly those of a
direct computation on the answers (window by window, every partition having reported), with
their scores and response counts; each crossing has one alert id, which a worker killed in
the middle and started again repeats but never changes; and a second group replaying the
same topics from the start gives the very same alert ids. The notifier delivers the
alerts of the routed segment, signed, by webhook, and no other."""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from cxstream.core.timefmt import format_rfc3339
from cxstream.core.windows import HOUR, MINUTE

from .harness import Worker, produce, read_all, wait_drained, wait_for
from .receivers import SECRET, HttpReceiver
from .test_programs import REGISTRY  # rnps (target 50), tnps, csat-delivery 1–10 (target 80)

EVERY = 10 * MINUTE
SETTLE = 2 * MINUTE
WINDOW = HOUR
MIN_RESPONSES = 5
ENV = {"CXSTREAM_WINDOWS": "1h,24h", "CXSTREAM_TARGET_WINDOWS": "1h",
       "CXSTREAM_CHECK_EVERY": "10m", "CXSTREAM_CHECK_SETTLE": "2m",
       "CXSTREAM_MIN_RESPONSES": str(MIN_RESPONSES)}
#: The uuid5 namespace of target alert ids: part of the alert contract (schemas/).
TARGET_NAMESPACE = uuid.UUID("3b7e0a52-9d14-5f0c-8c3e-2f6a91d0b7c4")
TARGETS = {"rnps": ("nps", 50.0), "csat-delivery": ("csat", 80.0)}


def history(seed: int, start: int, hours: int) -> list[dict[str, Any]]:
    """Answers every two minutes for `hours`: region eu is happy, then unhappy from the
    third hour to the fifth, then happy again; region us stays happy. Times jitter by up to
    40 s (less than the settle time, so every answer of a window is in before it is
    decided); 3 % are sent twice."""
    rng = random.Random(seed)
    docs: list[dict[str, Any]] = []
    for slot in range(hours * 30):
        nominal = start + slot * 2 * MINUTE
        unhappy = 3 * HOUR <= nominal - start < 5 * HOUR
        for region in ("eu", "us"):
            for program in ("rnps", "csat-delivery", "tnps"):
                bad = unhappy and region == "eu"
                if program == "csat-delivery":
                    score = rng.choice([3, 5, 6, 8]) if bad else rng.choice([8, 9, 10, 10, 9])
                else:
                    score = rng.choice([2, 4, 6, 8, 10]) if bad else rng.choice([9, 10, 10, 8, 9])
                at = nominal + rng.randrange(-40_000, 40_000)
                docs.append({"event_id": f"t{len(docs)}",
                             "customer_id": f"cust-{rng.randrange(80)}",
                             "survey": program, "score": score,
                             "occurred_at": format_rfc3339(at), "segment": {"region": region}})
                if rng.random() < 0.03:
                    docs.append(dict(docs[-1]))
    return docs


def decided(docs: list[dict[str, Any]], partition_of: dict[str, int], every: int, settle: int
            ) -> tuple[dict[tuple[str, str], tuple[str, int, int, str]], list[int]]:
    """The answers once each ((customer, event id) → (survey, score, occurred_at, region)),
    and the window ends decided: each multiple B of `every` such that every partition's
    stream time, which started before B + `settle`, reached B + `settle` (sent in time
    order, so a partition's stream time is its latest answer)."""
    from cxstream.core.timefmt import parse_rfc3339

    answers: dict[tuple[str, str], tuple[str, int, int, str]] = {}
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for d in docs:  # in the order sent: per partition, the order the worker reads
        at = parse_rfc3339(d["occurred_at"])
        assert at is not None
        p = partition_of[d["customer_id"]]
        first.setdefault(p, at)
        last[p] = max(last.get(p, at), at)
        answers.setdefault((d["customer_id"], d["event_id"]),
                           (d["survey"], d["score"], at, d["segment"]["region"]))
    lo = max(first.values())
    hi = min(last.values())
    return answers, [b for b in range((lo - settle) // every * every, hi + 1, every)
                     if lo < b + settle <= hi]


def expected_alerts(docs: list[dict[str, Any]], partition_of: dict[str, int]
                    ) -> dict[str, tuple[str, str, str, int, float, int]]:
    """alert_id → (kind, program, segment, window end, score, responses), computed directly
    from the answers: a window ending at B (a multiple of EVERY) is decided once every
    partition's stream time, which started before B + SETTLE, has reached B + SETTLE;
    decisions in order, per (program, segment) with at least MIN_RESPONSES answers."""
    answers, boundaries = decided(docs, partition_of, EVERY, SETTLE)
    below: set[tuple[str, str]] = set()
    out: dict[str, tuple[str, str, str, int, float, int]] = {}
    for b in boundaries:
        for segment in ("all", "region:eu", "region:us"):
            for program, (metric, target) in TARGETS.items():
                scores = [s for (prog, s, at, region) in answers.values()
                          if prog == program and b - WINDOW <= at < b
                          and segment in ("all", f"region:{region}")]
                n = len(scores)
                if n < MIN_RESPONSES:
                    continue
                if metric == "nps":
                    score = 100.0 * (sum(s >= 9 for s in scores) - sum(s <= 6 for s in scores)) / n
                else:
                    score = 100.0 * sum(s >= 8 for s in scores) / n
                key = (program, segment)
                kind = None
                if score < target and key not in below:
                    kind = "below_target"
                    below.add(key)
                elif score >= target and key in below:
                    kind = "back_on_target"
                    below.discard(key)
                if kind is not None:
                    aid = str(uuid.uuid5(TARGET_NAMESPACE,
                                         f"{kind}\n{program}\n1h\n{segment}\n{b}"))
                    out[aid] = (kind, program, segment, b, score, n)
    return out


def target_alerts(records: list[Any], source: str,
                  kinds: tuple[str, ...] = ("below_target", "back_on_target")
                  ) -> dict[str, list[dict[str, Any]]]:
    """alert_id → the segment alerts of that id (of `kinds`) written by the group `source`."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        headers = dict(r.headers or ())
        doc = orjson.loads(r.value)
        if doc["kind"] not in kinds:
            continue
        if headers.get("ce_source", b"").decode() != source:
            continue
        assert r.key == doc["segment_key"].encode(), (r.key, doc)
        out.setdefault(doc["alert_id"], []).append(doc)
    return out


def _check(got: dict[str, list[dict[str, Any]]],
           want: dict[str, tuple[str, str, str, int, float, int]]) -> None:
    from cxstream.core.timefmt import parse_rfc3339

    assert set(got) == set(want), (
        f"missing {[want[a] for a in set(want) - set(got)][:5]}, "
        f"unexpected {[got[a][0] for a in set(got) - set(want)][:5]}")
    for aid, docs in got.items():
        kind, program, segment, b, score, n = want[aid]
        for d in docs:  # a repeat after a crash is the same alert
            assert (d["kind"], d["program"], d["segment_key"], d["window"]) == \
                (kind, program, segment, "1h"), d
            assert parse_rfc3339(d["window_end"]) == b, d
            assert d["responses"] == n and abs(d["score"] - score) < 1e-9, (d, score, n)
            assert d["target"] == TARGETS[program][1]


async def test_targets_fire_once_per_crossing_live_after_a_crash_and_in_a_replay(
        worker_factory: Any, tmp_path: Path) -> None:
    registry = tmp_path / "surveys.toml"
    registry.write_text(REGISTRY)
    http = HttpReceiver()
    await http.start()
    routing = tmp_path / "routing.toml"
    # The notifier routes target alerts by their segment, like customer alerts.
    routing.write_text(f"""
kinds = ["below_target", "back_on_target"]

[channels.eu]
type = "webhook"
url = "{http.url}/hook/ok"
secret = "{SECRET}"
allow_private = true

[[routes]]
segment = "region:eu"
channel = "eu"
""")
    env = {**ENV, "CXSTREAM_SURVEYS": str(registry)}
    now = int(time.time() * 1000)
    start = (now - 9 * HOUR) // HOUR * HOUR
    docs = history(7, start, 8)

    w: Worker = worker_factory(name="live",
                               extra_env={**env, "CXSTREAM_NOTIFY_CONFIG": str(routing)})
    w.start()
    await w.wait_ready()
    t = w.prefix
    half = len(docs) // 2
    metas = await produce(w.bootstrap, f"{t}surveys",
                          [(d["customer_id"].encode(), orjson.dumps(d)) for d in docs[:half]])
    # Killed while it works through the rest: the state it wrote and the alerts it sent
    # before are all it has when it starts again.
    metas += await produce(w.bootstrap, f"{t}surveys",
                           [(d["customer_id"].encode(), orjson.dumps(d)) for d in docs[half:]])
    w.kill()
    w.start()
    await w.wait_ready()
    await wait_drained(w.bootstrap, f"{t}cxstream", [f"{t}surveys"])
    partition_of = {d["customer_id"]: p for d, (p, _) in zip(docs, metas)}
    assert len(set(partition_of.values())) == 4, "every partition must have answers"
    want = expected_alerts(docs, partition_of)
    kinds = {v[0] for v in want.values()}
    assert kinds == {"below_target", "back_on_target"}, want
    segments = {v[2] for v in want.values()}
    assert "region:eu" in segments and "region:us" not in segments, want

    async def alerts_of(group: str) -> dict[str, list[dict[str, Any]]] | None:
        """The group's target alerts once they hold every one expected."""
        got = target_alerts(await read_all(w.bootstrap, f"{t}alerts"), f"cxstream/{t}{group}")
        return got if set(got) >= set(want) else None

    live = await wait_for(lambda: alerts_of("cxstream"), 60, "the live group's target alerts")
    _check(live, want)

    # Notified: each alert of region:eu once at least (a repeat after the kill carries the
    # same webhook-id), the others not at all (no route, no default).
    eu = {aid for aid, v in want.items() if v[2] == "region:eu"}

    async def notified() -> bool:
        return set(http.accepted) >= eu

    await wait_for(notified, 60, "the region:eu target alerts to be notified")
    assert set(http.accepted) == eu, (set(http.accepted) - eu, eu - set(http.accepted))
    for aid, deliveries in http.accepted.items():
        assert all(d["body"]["alert_id"] == aid and d["body"]["kind"] == want[aid][0]
                   for d in deliveries)
    assert http.bad_signatures == 0
    await http.stop()

    # A second group replays the same topics from the start: the same alerts, same ids.
    replay: Worker = worker_factory(name="replay",
                                    extra_env={**env, "CXSTREAM_APP_ID": "replay"})
    w.stop()
    replay.start()
    await replay.wait_ready()
    await wait_drained(replay.bootstrap, f"{t}replay", [f"{t}surveys"])

    again = await wait_for(lambda: alerts_of("replay"), 60, "the replay's target alerts")
    _check(again, want)
    assert all(len(v) == 1 for v in again.values()), "a clean replay sends each alert once"
