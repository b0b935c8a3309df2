"""Chaos 7: changelog records fetched during table recovery never reach the recovery. Seen
once in CI: one partition stuck at "have offset -1" while the three others were restored, the
worker never ready. Two faults, each forced on the restarted worker's recovery: a fetch whose
records are dropped as the flow stops (`cxstream.worker.consumer` reads those partitions again at
once), and records that vanish on their way (`cxstream.worker.recovery_watch` finds the stalled partition
and reads it again). Either way the worker becomes ready and answers exactly as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import (
    Expected,
    Worker,
    as_of_after,
    assert_scores_match_oracle,
    loading,
    metric_samples,
    mixed_stream,
    scores_by_window,
    wait_inputs_drained,
)

from .test_sigterm import sigterm

#: fault (a sitecustomize folder here) -> what the worker logs when it reads again
FAULTS = {
    "stopped_changelog_fetch": "reading changelog records dropped from a fetch again",
    "lost_changelog_fetch": "reading it again from offset",
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_changelog_records_lost_on_their_way_to_the_recovery_are_read_again(
        worker_factory: Any, fault: str) -> None:
    w: Worker = worker_factory(extra_env=loading(Path(__file__).parent / fault))
    t = w.prefix
    w.start()
    await w.wait_ready()
    profiles, surveys = mixed_stream(seed=505, responses=1500)
    expected = Expected()
    sent = profiles + surveys
    await expected.produce(w.bootstrap, t, sent)
    await wait_inputs_drained(w)
    expected.finish(t)
    as_of = as_of_after(expected.events)
    before = await scores_by_window(w, as_of)

    sigterm(w)
    log_start = w.log_path.stat().st_size
    w.start()  # the memory store restores everything from the changelog
    await w.wait_ready(120)
    # Nothing of the state is missing: the same answers, equal to the oracle's.
    assert await scores_by_window(w, as_of) == before
    assert await assert_scores_match_oracle(w, expected.events) > 100
    log = w.log_path.read_bytes()[log_start:].decode(errors="replace")
    assert "TEST: " in log, log[-3000:]  # the fault did happen
    assert FAULTS[fault] in log, log[-3000:]
    assert "Done reading from changelog topics" in log, log[-3000:]
    stalls = metric_samples(await w.metrics(), "cxstream_recovery_stalls_total").get((), 0)
    assert stalls == (1 if fault == "lost_changelog_fetch" else 0), stalls
