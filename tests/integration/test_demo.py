"""`cxstream demo --duration 60` on a fresh data dir: starts its own broker and worker, shows
detractor alerts and a non-empty score table, ends by itself with exit 0, leaves nothing running."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .harness import free_port


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in cmdline or text in environ:
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def test_demo_runs_and_cleans_up(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXSTREAM_")}
    env.update({"CXSTREAM_DATA_DIR": str(data_dir), "CXSTREAM_WEB_PORT": str(free_port())})
    proc = subprocess.run([sys.executable, "-m", "cxstream", "demo", "--duration", "60"],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=360)
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, out[-4000:]
    assert "broker started" in out and "broker stopped" in out, out[-4000:]
    summary = re.search(r"(\d+) alerts, (\d+) segments with scores", out)
    assert summary, out[-4000:]
    alerts, segments = int(summary[1]), int(summary[2])
    assert alerts > 0 and segments > 0
    assert out.count("ALERT ") == alerts
    assert "DETRACTOR" in out
    assert _processes_mentioning(str(data_dir)) == []
