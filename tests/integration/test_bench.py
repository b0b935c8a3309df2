"""`cxstream bench` end to end on the session broker: every requested phase measures.

No timing is asserted (timing belongs in the benchmark's own output, not in pass/fail tests):
only that each phase ran on all events and reported a positive rate and its ratio.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from .harness import unique_prefix


def test_bench_runs_every_requested_phase(kafka_bootstrap: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXSTREAM_")}
    env.update(CXSTREAM_BROKER=kafka_bootstrap, CXSTREAM_TOPIC_PREFIX=unique_prefix(),
               CXSTREAM_DATA_DIR=str(tmp_path / "data"))
    proc = subprocess.run(
        [sys.executable, "-m", "cxstream", "bench", "--events", "3000", "--customers", "500",
         "--phases", "baseline,faust,cxstream", "--json-out", str(out)],
        env=env, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-4000:]
    r = orjson.loads(out.read_bytes())
    assert "errors" not in r
    assert r["produce"]["events"] == 3000
    assert r["produce"]["customers_with_events"] == 500  # every simulated customer has state
    for phase in ("baseline", "faust", "cxstream"):
        assert r[phase]["events"] == 3000, (phase, r[phase])
        assert r[phase]["events_per_s"] > 0, (phase, r[phase])
        assert r[phase]["ratio_to_baseline"] > 0, (phase, r[phase])
    assert r["baseline"]["ratio_to_baseline"] == 1.0
    assert r["cxstream"]["events_total_metric"] >= 3000
    assert "windows" not in r and "latency" not in r
    assert "vs baseline" in proc.stdout.decode()
