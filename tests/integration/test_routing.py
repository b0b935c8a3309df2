"""Two workers share the partitions; the scores API answers the same from either, and the
answer is the sum over both workers' partitions (equal to the oracle)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from .harness import split_between, wait_drained, wait_for
from .test_scores import HORIZON, generate, oracle_events, produce_cli
from ..unit.core import oracle
from cxstream.core.timefmt import format_rfc3339
from cxstream.core.windows import DAY, MINUTE


async def test_scores_answer_the_same_from_any_worker(worker_factory, tmp_path: Path) -> None:
    a, b = worker_factory(name="a"), worker_factory(name="b")
    a.start()
    b.start()
    await asyncio.gather(a.wait_ready(), b.wait_ready())

    await wait_for(lambda: split_between(a, b), 120, "the group to settle on two members")
    path = tmp_path / "surveys.jsonl"
    generate(path, 1500, seed=5)
    proc = produce_cli(a, path)
    await asyncio.to_thread(proc.communicate)
    await wait_drained(a.bootstrap, f"{a.prefix}cxstream", [f"{a.prefix}surveys"])

    events = await oracle_events(a)
    good = oracle.accepted(events, HORIZON)
    st = max(oracle.stream_times(events, HORIZON).values())
    t = st - st % MINUTE + MINUTE
    for window, ms in (("24h", DAY), ("7d", 7 * DAY)):
        sa, body_a = await a.get("/scores", window=window, as_of=format_rfc3339(t))
        sb, body_b = await b.get("/scores", window=window, as_of=format_rfc3339(t))
        assert sa == sb == 200
        assert body_a == body_b
        rows = {r["segment"]: r for r in body_a["segments"]}
        for segment in ("all", "plan:pro", "region:eu", "channel:chat"):
            oracle.assert_matches(rows[segment], oracle.scores(good, segment, t - ms, t))
    status, one = await b.get("/scores/plan:free", window="7d", as_of=format_rfc3339(t))
    assert status == 200
    oracle.assert_matches(one, oracle.scores(good, "plan:free", t - 7 * DAY, t))
