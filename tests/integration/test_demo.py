"""`cxstream demo --duration 60` on a fresh data dir: starts its own broker and worker, shows
detractor alerts, a target alert and a non-empty score table, ends by itself with exit 0,
leaves nothing running.

It runs the demo's survey programs (deploy/surveys.demo.toml): its final tables per program
and for `all` are checked against scores computed here, independently, from the answers the
demo sent (the simulator is reproducible from its seed, so they are made again here). So is
its one target alert: `touchpoint:billing`'s tNPS below its target 0 over the 1h window
ending one minute into the history the demo sends first, whose answers (and their times)
are made again here too."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from fractions import Fraction
from pathlib import Path
from typing import Any

from cxstream.config.surveys import registry
from cxstream.core.timefmt import parse_rfc3339
from cxstream.core.windows import HOUR, MINUTE
from cxstream.tools.demo import DEMO_SURVEYS
from cxstream.tools.simulate import past_times
from cxstream.tools.simulator import Simulator

from .harness import free_port

MIN_RESPONSES = 30  # CXSTREAM_MIN_RESPONSES' default: below it a score is flagged `*`
RATE = 50.0  # the demo's default events per second, of its history too
#: An `ALERT` line of a target alert (cxstream.tools.render.alert_line).
TARGET_LINE = re.compile(
    r"ALERT (?P<detected>\S+)  (?P<kind>BELOW_TARGET|BACK_ON_TARGET)  (?P<segment>\S+)  "
    r"(?P<program>\S+) (?P<metric>NPS|CSAT|CES) (?P<score>-?[\d.]+)%? (?P<rel>[<>=]) target "
    r"(?P<target>-?[\d.]+)%? over the (?P<window>\S+) ending (?P<end>\S+) "
    r"\((?P<n>\d+) responses(?:, ±(?P<moe>[\d.]+))?\)")


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


def _answers(sent: dict[str, int]) -> list[dict[str, Any]]:
    """The survey answers the demo sent: its first events, made again (seed 42, 300
    customers, the demo's registry: the demo's defaults). Only their order depends on
    nothing but the seed; their timestamps do not matter here (all within the window)."""
    sim = Simulator(seed=42, customers=300, programs=registry(DEMO_SURVEYS, 50))
    events = [sim.event(0) for _ in range(sent["surveys"] + sent["interactions"])]
    answers = [doc for topic, doc in events if topic == "surveys"]
    assert len(answers) == sent["surveys"], "the simulator no longer reproduces the demo"
    return answers


class Oracle:
    """Scores of a set of answers, from the registry file's own words (not the code's)."""

    def __init__(self, metric: str, scale: list[int], good: list[int] | None) -> None:
        self.metric, self.scale, self.good = metric, scale, good
        self.scores: list[int] = []

    def add(self, score: int) -> None:
        assert self.scale[0] <= score <= self.scale[1], (self.metric, self.scale, score)
        self.scores.append(score)

    @property
    def n(self) -> int:
        return len(self.scores)

    def in_range(self) -> int:
        assert self.good is not None
        return sum(self.good[0] <= s <= self.good[1] for s in self.scores)

    def score(self) -> Fraction:
        """NPS −100..100; CSAT % satisfied; CES the mean answer."""
        n = self.n
        if self.metric == "nps":
            promoters = sum(s >= 9 for s in self.scores)
            detractors = sum(s <= 6 for s in self.scores)
            return Fraction(100 * (promoters - detractors), n)
        if self.metric == "csat":
            return Fraction(100 * self.in_range(), n)
        return Fraction(sum(self.scores), n)


def _close(shown: str, exact: Fraction, digits: int) -> bool:
    return abs(Fraction(shown) - exact) <= Fraction(1, 2 * 10 ** digits)


def _program_rows(out: str) -> dict[str, dict[str, str]]:
    """The rows of the demo's last table of scores per program, by program id."""
    block = out[out.rindex("scores per program, segment all, window 1h"):]
    lines = block.splitlines()[1:]
    assert lines[0].split()[:3] == ["program", "metric", "scale"], block[:400]
    rows: dict[str, dict[str, str]] = {}
    pattern = re.compile(r"(?P<id>\S+)\s+(?P<metric>nps|csat|ces)\s+(?P<scale>-?\d+–-?\d+)\s+"
                         r"(?P<score>\S+)\s+(?P<n>\d+)\s+(?P<target>\S+)\s+"
                         r"(?P<meets>yes|no|–)\s+(?P<detail>.*)")
    for line in lines[1:]:
        m = pattern.fullmatch(line)
        if m is None:
            break
        rows[m["id"]] = m.groupdict()
    return rows


def _check_programs(out: str, answers: list[dict[str, Any]]) -> dict[str, Oracle]:
    file = tomllib.loads(DEMO_SURVEYS.read_text())["programs"]
    oracles: dict[str, Oracle] = {}
    for pid, p in file.items():
        good = p.get("satisfied") or p.get("high_effort")
        assert p["metric"] == "nps" or good, f"{pid}: the demo's file spells its range out"
        oracles[pid] = Oracle(p["metric"], p.get("scale", [0, 10]), good)
    assert {p["metric"] for p in file.values()} == {"nps", "csat", "ces"}
    for doc in answers:
        assert doc["survey"] in oracles, f"the demo answered {doc['survey']}, not in its file"
        oracles[doc["survey"]].add(doc["score"])
    rows = _program_rows(out)
    assert set(rows) == set(file), rows
    for pid, oracle in oracles.items():
        row, p = rows[pid], file[pid]
        assert oracle.n > 0, f"the demo sent no answer of {pid}"
        assert row["metric"] == p["metric"]
        assert row["scale"] == f"{oracle.scale[0]}–{oracle.scale[1]}"
        # Every answer sent was counted under its program: none was dead-lettered.
        assert int(row["n"]) == oracle.n, (pid, row, oracle.n)
        shown = row["score"]
        assert shown.endswith("*") == (oracle.n < MIN_RESPONSES), row
        shown = shown.rstrip("*").rstrip("%")
        exact = oracle.score()
        assert _close(shown, exact, 2 if p["metric"] == "ces" else 1), (pid, shown, exact)
        target = p.get("target")
        if target is None:
            assert (row["target"], row["meets"]) == ("–", "–"), row
            continue
        assert float(row["target"]) == target
        # ces-checkout's high effort is the top of its scale: a lower mean is better
        meets = exact <= Fraction(target) if p["metric"] == "ces" else exact >= Fraction(target)
        assert row["meets"] == ("yes" if meets else "no"), (pid, row, float(exact))
    return oracles


def _check_all_row(out: str, oracles: dict[str, Oracle]) -> None:
    """The last score table's `all` row: each metric summed over its programs."""
    table = out[out.rindex("\nwindow 1h, as of"):]  # the title line of a score table
    line = next(x for x in table.splitlines() if x.startswith("all "))
    _, nps, _, nps_n, csat, csat_n, ces, high, ces_n = line.replace("*", " ").split()

    def merged(metric: str) -> Oracle:
        group = [o for o in oracles.values() if o.metric == metric]
        total = Oracle(metric, group[0].scale, group[0].good)
        total.scores = [s for o in group for s in o.scores]
        return total

    for metric, shown, n in (("nps", nps, nps_n), ("csat", csat, csat_n)):
        exact = merged(metric)
        assert int(n) == exact.n and _close(shown, exact.score(), 1), (metric, line)
    effort = merged("ces")  # one CES program: its mean is the metric's
    assert int(ces_n) == effort.n and _close(ces, effort.score(), 2), line
    assert _close(high, Fraction(effort.in_range(), effort.n), 2), line


def _check_target_alert(out: str) -> None:
    """The demo's target alerts: exactly one, `touchpoint:billing`'s tNPS below its target
    over the window ending one minute into the history (the first window decided), with the
    score and responses of the answers sent before that minute's end."""
    lines = [line for line in out.splitlines() if re.match(r"ALERT \S+  (BELOW|BACK_ON)_", line)]
    assert len(lines) == 1, lines
    alert = TARGET_LINE.fullmatch(lines[0])
    assert alert, lines[0]
    file = tomllib.loads(DEMO_SURVEYS.read_text())["programs"]
    assert (alert["kind"], alert["segment"], alert["program"], alert["metric"], alert["window"]) \
        == ("BELOW_TARGET", "touchpoint:billing", "tnps", "NPS", "1h"), lines[0]
    target = file["tnps"]["target"]
    assert float(alert["target"]) == target
    score, n = float(alert["score"]), int(alert["n"])
    assert alert["rel"] == "<" and score < target and n >= MIN_RESPONSES, lines[0]

    since_text = re.search(r"^history: the traffic since (\S+) ", out, re.M)
    assert since_text, out[:3000]
    since, end = parse_rfc3339(since_text[1]), parse_rfc3339(alert["end"])
    assert since is not None and end is not None
    assert end == since + MINUTE, (since_text[1], alert["end"])  # the first window decided
    # Every answer before the window's end was sent in the history: its first events.
    sim = Simulator(seed=42, customers=300, programs=registry(DEMO_SURVEYS, 50))
    events = [sim.event(at) for at in past_times(since, end, RATE)]
    assert all(end - HOUR <= parse_rfc3339(doc["occurred_at"]) < end for _, doc in events)
    oracle = Oracle("nps", [0, 10], None)
    for topic, doc in events:
        if topic == "surveys" and doc["survey"] == "tnps" and doc.get("touchpoint") == "billing":
            oracle.add(doc["score"])
    assert n == oracle.n, (lines[0], oracle.n)
    assert _close(alert["score"], oracle.score(), 1), (lines[0], float(oracle.score()))


def test_demo_runs_and_cleans_up(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXSTREAM_")}
    env.update({"CXSTREAM_DATA_DIR": str(data_dir), "CXSTREAM_WEB_PORT": str(free_port())})
    proc = subprocess.run([sys.executable, "-m", "cxstream", "demo", "--duration", "60"],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=360)
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, out[-4000:]
    assert "broker started" in out and "broker stopped" in out, out[-4000:]
    summary = re.search(r"(\d+) alerts \((\d+) below_target, (\d+) back_on_target\), "
                        r"(\d+) segments with scores", out)
    assert summary, out[-4000:]
    alerts, segments = int(summary[1]), int(summary[4])
    assert alerts > 0 and segments > 0
    assert out.count("ALERT ") == alerts
    assert (int(summary[2]), int(summary[3])) == (1, 0), summary[0]
    assert "DETRACTOR" in out
    assert _processes_mentioning(str(data_dir)) == []

    assert f"CXSTREAM_SURVEYS={DEMO_SURVEYS}" in out, out[:2000]
    assert "answers sent after" not in out, out[-4000:]  # the worker counted them all
    sent = ast.literal_eval(re.findall(r"^sent (\{.*\})$", out, re.M)[-1])
    oracles = _check_programs(out, _answers(sent))
    _check_all_row(out, oracles)
    _check_target_alert(out)
