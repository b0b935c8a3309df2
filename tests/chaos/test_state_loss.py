"""Chaos 4: a stopped worker loses its local RocksDB store (the directory is deleted). It
rebuilds the state from the changelog, says so in its log and metrics, and gives the same
results: scores, no alert re-emitted, and the dedupe memory is back (retries sent after the
rebuild count once)."""

from __future__ import annotations

import random
import shutil
from typing import Any

from tests.integration.harness import (
    Expected,
    Worker,
    as_of_after,
    assert_alerts_match_oracle,
    assert_dead_letters_match,
    assert_scores_match_oracle,
    metric_samples,
    mixed_stream,
    read_all,
    scores_by_window,
    wait_inputs_drained,
)

from .test_sigterm import sigterm


async def test_a_deleted_rocksdb_store_is_rebuilt_from_the_changelog(worker_factory: Any) -> None:
    w: Worker = worker_factory(extra_env={"CXSTREAM_STORE": "rocksdb://"})
    t = w.prefix
    w.start()
    await w.wait_ready()
    profiles, surveys = mixed_stream(seed=404, responses=2500)
    first = profiles + surveys[:1800]
    expected = Expected()
    await expected.produce(w.bootstrap, t, first)
    await wait_inputs_drained(w)
    as_of = as_of_after(expected.events)
    before = await scores_by_window(w, as_of)
    alerts_before = len(await read_all(w.bootstrap, f"{t}alerts"))

    sigterm(w)
    store = w.data_dir / "worker"
    assert any(store.rglob("CURRENT")), f"no RocksDB store under {store}"  # RocksDB's own file
    shutil.rmtree(store)
    log_start = w.log_path.stat().st_size

    w.start()
    await w.wait_ready(180)
    log = w.log_path.read_bytes()[log_start:].decode(errors="replace")
    # Recovery progress, as Faust logs it: where the changelog ends, then done.
    assert "Restoring state from changelog topics" in log, log[-3000:]
    assert "Highwater for active changelog partitions" in log, log[-3000:]
    assert "Done reading from changelog topics" in log and "Recovery complete" in log, log[-3000:]
    assert any(store.rglob("CURRENT")), "the store was not rebuilt on disk"
    m = await w.metrics()
    assert metric_samples(m, "cxstream_recovery_in_progress") == {(): 0.0}
    assert metric_samples(m, "cxstream_recovery_remaining_messages") == {(): 0.0}

    # The same answers, and nothing was re-processed (no alert produced again).
    assert await scores_by_window(w, as_of) == before
    assert len(await read_all(w.bootstrap, f"{t}alerts")) == alerts_before
    # The rebuilt state goes on exactly: the rest of the stream plus retries of responses
    # sent before the loss (the dedupe memory came back with the state).
    recent = [s for s in surveys[1500:1800] if s.bad is None]
    retries = random.Random(404).sample(recent, 40)
    rest = surveys[1800:] + retries
    await expected.produce(w.bootstrap, t, rest)
    await wait_inputs_drained(w)
    expected.finish(t)
    assert await assert_scores_match_oracle(w, expected.events) > 100
    assert await assert_alerts_match_oracle(w.bootstrap, t, expected.alerts) == 0
    await assert_dead_letters_match(w.bootstrap, t, expected.dead, max_repeats_each=0)

