"""The command line: every command has help, and user errors are one clear line."""

from __future__ import annotations

from click.testing import CliRunner

from cxstream.cli import main

COMMANDS = ["worker", "broker", "produce", "simulate", "deadletters", "alerts", "scores", "demo"]


def test_every_command_has_help() -> None:
    runner = CliRunner()
    top = runner.invoke(main, ["--help"])
    assert top.exit_code == 0
    for name in COMMANDS:
        assert name in top.output
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, name
        assert len(result.output.splitlines()) > 2
    for sub in ("start", "stop", "status"):
        assert runner.invoke(main, ["broker", sub, "--help"]).exit_code == 0


def test_bad_setting_is_one_clear_line() -> None:
    result = CliRunner().invoke(main, ["deadletters"], env={"CXSTREAM_PARTITIONS": "zero"})
    assert result.exit_code == 2
    assert "CXSTREAM_PARTITIONS" in result.output and "Traceback" not in result.output


def test_produce_dry_run_reports_bad_lines_by_number(tmp_path) -> None:
    f = tmp_path / "s.jsonl"
    f.write_text(
        '{"event_id":"e1","customer_id":"c1","survey":"nps","score":9,"occurred_at":"2026-01-01T00:00:00Z"}\n'
        "\n"
        '{"event_id":"e2","customer_id":"c1","survey":"nps","score":12,"occurred_at":"2026-01-01T00:00:00Z"}\n'
        "not json\n")
    result = CliRunner(mix_stderr=False).invoke(main, ["produce", "surveys", str(f), "--dry-run"])
    assert result.exit_code == 1
    assert "line 3: score_out_of_range" in result.stdout
    assert "line 4: not_json" in result.stdout
    assert "1 valid, 2 invalid" in result.stderr


def test_produce_dry_run_uses_the_workers_earliest_event_time(tmp_path) -> None:
    f = tmp_path / "s.jsonl"
    f.write_text('{"event_id":"e1","customer_id":"c1","survey":"nps","score":9,'
                 '"occurred_at":"2026-01-01T00:00:00Z"}\n')
    ok = CliRunner(mix_stderr=False).invoke(main, ["produce", "surveys", str(f), "--dry-run"])
    assert ok.exit_code == 0, ok.output
    later = CliRunner(mix_stderr=False).invoke(
        main, ["produce", "surveys", str(f), "--dry-run"],
        env={"CXSTREAM_MIN_EVENT_TIME": "2026-06-01T00:00:00Z"})
    assert later.exit_code == 1
    assert "line 1: timestamp_out_of_range" in later.stdout
