"""`cxstream produce --dry-run` judges survey lines by the workers' registry
(`CXSTREAM_SURVEYS`): what it reports for a line is what a worker would dead-letter it as,
code and reason."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import orjson
from click.testing import CliRunner

from cxstream.cli import main
from cxstream.config.surveys import registry
from cxstream.core.decode import DEFAULT_MIN_EVENT_MS, decode_survey
from cxstream.core.errors import Rejection
from cxstream.core.programs import scales
from cxstream.tools.produce import dry_run

REGISTRY = """
[programs.csat-delivery]
metric = "csat"
scale = [1, 10]
satisfied = [8, 10]

[programs.ces-checkout]
metric = "ces"
scale = [1, 7]
"""
AT = "2026-01-01T00:00:00Z"


def line(survey: str, score: int, event_id: str = "e1") -> bytes:
    return orjson.dumps({"event_id": event_id, "customer_id": "c1", "survey": survey,
                         "score": score, "occurred_at": AT})


LINES = [line("csat-delivery", 9, "e1"), line("csat-delivery", 10, "e2"),
         line("ces-checkout", 7, "e3"), line("nps", 9, "e4"),
         line("csat-delivery", 11, "e5"), line("csat-app", 4, "e6"), line("CSAT", 4, "e7")]


def run(tmp_path: Path, env: dict[str, str]) -> tuple[int, str, str]:
    f = tmp_path / "s.jsonl"
    f.write_bytes(b"\n".join(LINES) + b"\n")
    result = CliRunner(mix_stderr=False).invoke(main, ["produce", "surveys", str(f), "--dry-run"],
                                                env=env)
    return result.exit_code, result.stdout, result.stderr


def reported(stdout: str) -> dict[int, tuple[str, str]]:
    """line number → (code, reason) of the bad lines the dry run printed."""
    out = {}
    for text in stdout.splitlines():
        match = re.fullmatch(r"line (\d+): ([a-z_]+): (.*)", text)
        assert match, text
        out[int(match.group(1))] = (match.group(2), match.group(3))
    return out


def test_dry_run_uses_the_registry_as_the_worker_does(tmp_path: Path) -> None:
    path = tmp_path / "surveys.toml"
    path.write_text(REGISTRY)
    code, stdout, stderr = run(tmp_path, {"CXSTREAM_SURVEYS": str(path)})
    assert code == 1 and "4 valid, 3 invalid (nothing sent)" in stderr
    # the worker's decoder with the worker's registry: the same codes and reasons
    programs = scales(registry(str(path), 50))
    now = int(time.time() * 1000)
    expected = {}
    for number, raw in enumerate(LINES, 1):
        result = decode_survey(raw, b"c1", now, DEFAULT_MIN_EVENT_MS, programs)
        if isinstance(result, Rejection):
            expected[number] = (result.code.value, result.reason)
    assert reported(stdout) == expected
    assert sorted(expected) == [5, 6, 7]
    assert expected[5][0] == "score_out_of_range" and "csat-delivery answers are integers 1..10" \
        in expected[5][1]
    assert expected[6][0] == expected[7][0] == "unknown_survey"


def test_dry_run_without_a_registry_knows_the_built_ins_only(tmp_path: Path) -> None:
    code, stdout, stderr = run(tmp_path, {"CXSTREAM_SURVEYS": ""})
    assert code == 1 and "1 valid, 6 invalid" in stderr
    bad = reported(stdout)
    assert [bad[n][0] for n in (1, 2, 3, 5, 6, 7)] == ["unknown_survey"] * 6
    assert "3 known: ces, csat, nps" in bad[1][1]


def test_a_registry_that_cannot_be_used_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "surveys.toml"
    path.write_text('[programs.csat-delivery]\nmetric = "csat"\nscale = [10, 1]\n')
    code, stdout, stderr = run(tmp_path, {"CXSTREAM_SURVEYS": str(path)})
    assert code == 2 and stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: CXSTREAM_SURVEYS=")
    assert "inverted" in lines[0] and "Traceback" not in stderr


def test_other_topics_do_not_read_the_registry(tmp_path: Path) -> None:
    """A dry run of interactions judges interactions: the survey registry is no concern."""
    f = tmp_path / "i.jsonl"
    f.write_text('{"event_id":"i1","customer_id":"c1","occurred_at":"2026-01-01T00:00:00Z",'
                 '"kind":"call"}\n')
    result = CliRunner(mix_stderr=False).invoke(
        main, ["produce", "interactions", str(f), "--dry-run"],
        env={"CXSTREAM_SURVEYS": str(tmp_path / "missing.toml")})
    assert result.exit_code == 0, result.output


def test_dry_run_takes_the_scales_of_a_registry() -> None:
    programs = {"csat-delivery": ("csat", 1, 10)}
    stream = io.BytesIO(line("csat-delivery", 10) + b"\n" + line("nps", 9) + b"\n")
    report = dry_run("surveys", stream, DEFAULT_MIN_EVENT_MS, programs)
    assert report.sent == 1 and [(n, c) for n, c, _ in report.bad] == [(2, "unknown_survey")]
