"""Segment trends on the real broker: four hours of NPS answers over ten regions (about 400
per region and hour) on four partitions; halfway, one region's NPS drops by 20 points
while the others only drift by noise, and a tiny region (20 answers an hour) swings from all
promoters to all detractors. Tested at 99 %.

The `segment_shift` alerts are exactly those of a direct computation on the answers (the
z-test on the counts, window by window once every partition has passed a window's end):
the dropping region alerts, once, `down`; no other region does, nor the tiny one (fewer
answers than the minimum); a second group replaying the topics gives the same ids; and
`GET /trends` gives every segment's change and interval as computed on the counts."""

from __future__ import annotations

import math
import random
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from cxstream.core.timefmt import format_rfc3339
from cxstream.core.windows import HOUR, MINUTE

from .harness import Worker, produce, read_all, wait_drained, wait_for
from .test_targets import TARGET_NAMESPACE, decided, target_alerts

EVERY = 10 * MINUTE
SETTLE = 2 * MINUTE
WINDOW = HOUR
MIN_RESPONSES = 100
Z = 2.5758293035489004  # two-sided 99 %: NormalDist().inv_cdf(0.995)
ENV = {"CXSTREAM_WINDOWS": "1h,24h", "CXSTREAM_TREND_WINDOWS": "1h",
       "CXSTREAM_CHECK_EVERY": "10m", "CXSTREAM_CHECK_SETTLE": "2m",
       "CXSTREAM_TREND_LEVEL": "0.99", "CXSTREAM_TREND_MIN_RESPONSES": str(MIN_RESPONSES)}
#: eu drops; nine others drift by noise alone, enough of them that `all` moves little.
REGIONS = ("eu", "us", "apac", "latam", "mea", "ca", "uk", "de", "fr", "jp")
#: Scores drawn from: promoters 45 %, passives 40 %, detractors 15 % (NPS 30); after the
#: drop, 35 / 40 / 25 (NPS 10).
SEED = 2  # one of the seeds where, at 99 %, only the drop is significant (the docs say why 99.9 % is the default)
BEFORE = [10] * 9 + [8] * 8 + [3] * 3
AFTER = [10] * 7 + [8] * 8 + [3] * 5


def history(seed: int, start: int, hours: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    docs: list[dict[str, Any]] = []
    for minute in range(hours * 60):
        at = start + minute * MINUTE
        dropped = minute >= hours * 30
        for region in REGIONS:
            for _ in range(rng.choice([6, 7, 7])):
                pool = AFTER if dropped and region == "eu" else BEFORE
                docs.append({"event_id": f"s{len(docs)}",
                             "customer_id": f"cust-{rng.randrange(400)}", "survey": "nps",
                             "score": rng.choice(pool),
                             "occurred_at": format_rfc3339(at + rng.randrange(0, 50_000)),
                             "segment": {"region": region}})
        if minute % 3 == 0:
            docs.append({"event_id": f"s{len(docs)}",
                         "customer_id": f"cust-{rng.randrange(400)}", "survey": "nps",
                         "score": 0 if dropped else 10,
                         "occurred_at": format_rfc3339(at + 55_000),
                         "segment": {"region": "tiny"}})
    return docs


def z_test(now: list[int], then: list[int]) -> tuple[float, float, float, bool]:
    """(change, low, high, significant) written from the definition: NPS as 100 × the mean
    of +1/0/−1, its variance p + d − (p − d)², the z-test at 99 %."""
    def stats(c: list[int]) -> tuple[int, float, float]:
        n = sum(c)
        mean = (c[0] - c[2]) / n
        return n, mean, c[0] / n + c[2] / n - mean ** 2

    n1, m1, v1 = stats(now)
    n0, m0, v0 = stats(then)
    diff = 100 * (m1 - m0)
    se = 100 * math.sqrt(v1 / n1 + v0 / n0)
    low, high = diff - Z * se, diff + Z * se
    return diff, low, high, n1 >= MIN_RESPONSES and n0 >= MIN_RESPONSES and (low > 0 or high < 0)


def counts(answers: Any, segment: str, start: int, end: int) -> list[int]:
    out = [0, 0, 0]
    for survey, score, at, region in answers.values():
        if start <= at < end and segment in ("all", f"region:{region}"):
            out[0 if score >= 9 else 1 if score >= 7 else 2] += 1
    return out


def expected_shifts(answers: Any, boundaries: list[int]) -> dict[str, tuple[str, str, int]]:
    """alert_id → (direction, segment, window end)."""
    last: dict[str, str] = {}
    out: dict[str, tuple[str, str, int]] = {}
    for b in boundaries:
        for segment in ("all", *(f"region:{r}" for r in (*REGIONS, "tiny"))):
            now = counts(answers, segment, b - WINDOW, b)
            then = counts(answers, segment, b - 2 * WINDOW, b - WINDOW)
            if not sum(now) or not sum(then):
                continue
            diff, _, _, significant = z_test(now, then)
            direction = "up" if diff > 0 else "down"
            if significant and last.get(segment) != direction:
                last[segment] = direction
                aid = str(uuid.uuid5(TARGET_NAMESPACE,
                                     f"segment_shift\n{direction}\n1h\n{segment}\n{b}"))
                out[aid] = (direction, segment, b)
    return out


async def test_a_real_drop_alerts_once_noise_and_small_samples_do_not(
        worker_factory: Any, tmp_path: Path) -> None:
    now_ms = int(time.time() * 1000)
    start = (now_ms - 5 * HOUR) // HOUR * HOUR
    docs = history(SEED, start, 4)
    w: Worker = worker_factory(name="live", extra_env=ENV)
    w.start()
    await w.wait_ready()
    t = w.prefix
    metas = await produce(w.bootstrap, f"{t}surveys",
                          [(d["customer_id"].encode(), orjson.dumps(d)) for d in docs])
    await wait_drained(w.bootstrap, f"{t}cxstream", [f"{t}surveys"])
    partition_of = {d["customer_id"]: p for d, (p, _) in zip(docs, metas)}
    answers, boundaries = decided(docs, partition_of, EVERY, SETTLE)
    want = expected_shifts(answers, boundaries)
    assert {(d, s) for d, s, _ in want.values()} == {("down", "region:eu")}, want
    kinds = ("segment_shift",)

    async def shifts(source: str) -> dict[str, list[dict[str, Any]]] | None:
        got = target_alerts(await read_all(w.bootstrap, f"{t}alerts"), source, kinds)
        return got if set(got) >= set(want) else None

    live = await wait_for(lambda: shifts(f"cxstream/{t}cxstream"), 60, "the shift alert")
    assert set(live) == set(want)
    for aid, [doc] in live.items():
        direction, segment, b = want[aid]
        assert (doc["direction"], doc["segment_key"], doc["window"]) == (direction, segment, "1h")
        now = counts(answers, segment, b - WINDOW, b)
        then = counts(answers, segment, b - 2 * WINDOW, b - WINDOW)
        diff, low, high, _ = z_test(now, then)
        assert (doc["responses"], doc["previous_responses"]) == (sum(now), sum(then))
        assert abs(doc["change"] - diff) < 1e-9
        assert abs(doc["interval"][0] - low) < 1e-9 and abs(doc["interval"][1] - high) < 1e-9

    # /trends at an instant: every segment's change and interval, as computed on the counts
    # (an hour after the drop: the last hour against the hour before it).
    as_of = start + 3 * HOUR
    status, body = await w.get("/trends", window="1h", as_of=format_rfc3339(as_of))
    assert status == 200, body
    rows = {r["segment"]: r for r in body["segments"]}
    assert set(rows) == {"all", *(f"region:{r}" for r in (*REGIONS, "tiny"))}
    for segment, row in rows.items():
        now = counts(answers, segment, as_of - WINDOW, as_of)
        then = counts(answers, segment, as_of - 2 * WINDOW, as_of - WINDOW)
        diff, low, high, significant = z_test(now, then)
        assert (row["responses"], row["previous_responses"]) == (sum(now), sum(then)), segment
        assert abs(row["change"] - diff) < 1e-9 and row["significant"] == significant
        assert abs(row["interval"][0] - low) < 1e-9 and abs(row["interval"][1] - high) < 1e-9
    assert rows["region:eu"]["significant"] and rows["region:eu"]["change"] < -13
    # All promoters, then all detractors, but 20 answers an hour: never significant.
    assert rows["region:tiny"]["change"] == -200 and not rows["region:tiny"]["significant"]

    # A second group replaying the topics: the same alert, the same id, once.
    replay: Worker = worker_factory(name="replay", extra_env={**ENV, "CXSTREAM_APP_ID": "replay"})
    w.stop()
    replay.start()
    await replay.wait_ready()
    await wait_drained(replay.bootstrap, f"{t}replay", [f"{t}surveys"])
    again = await wait_for(lambda: shifts(f"cxstream/{t}replay"), 60, "the replayed shift")
    assert set(again) == set(want) and all(len(v) == 1 for v in again.values())
