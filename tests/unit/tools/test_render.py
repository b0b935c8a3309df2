"""The demo's live view and the plain score/alert text, rendered from sample API JSON (no I/O)."""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import pytest
from rich.console import Console

from cxstream.tools import render
from cxstream.tools.render import (DemoStatus, alert_line, alerts_renderable, demo_header, demo_view,
                             scores_renderable, score_table, truncate)

WIDTH = 140


def text(renderable: Any, width: int = WIDTH) -> str:
    console = Console(record=True, width=width, color_system=None, force_terminal=False)
    console.print(renderable)
    return console.export_text()


def _row(segment: str, nps: float | None, moe: float | None, n: int, csat: float | None,
         ces: float | None, share: float | None, low: bool = False) -> dict[str, Any]:
    return {"segment": segment, "window": "1h", "as_of": "2026-03-01T12:00:00Z",
            "nps": {"responses": n, "promoters": 0, "passives": 0, "detractors": 0,
                    "score": nps, "margin_of_error": moe, "low_sample": low},
            "csat": {"responses": n, "satisfied": 0, "score": csat, "low_sample": low},
            "ces": {"responses": n, "mean": ces, "high_effort_share": share, "low_sample": low}}


SCORES = {"window": "1h", "as_of": "2026-03-01T12:00:00Z", "segments": [
    _row("plan:enterprise", 42.857, 12.3456, 140, 81.25, 2.3456, 0.1234),
    _row("region:emea", -12.5, 30.0, 8, 50.0, 4.1, 0.75, low=True),
    _row("touchpoint:onboarding", None, None, 0, None, None, None, low=True),
]}

ALERT = {"alert_id": "a1", "kind": "detractor", "customer_id": "cust-0042", "score": 2,
         "previous_category": "promoter", "detected_at": "2026-03-01T12:34:56.789Z",
         "occurred_at": "2026-03-01T12:34:50Z", "segment": {"plan": "enterprise"},
         "comment": "The onboarding took three weeks and nobody answered my emails " * 3,
         "owner": {"name": "Dana Owner", "email": "dana@example.com"}}
RECOVERED = {**ALERT, "alert_id": "a2", "kind": "recovered", "customer_id": "cust-0007",
             "score": 9, "previous_category": "detractor", "comment": None, "owner": None,
             "detected_at": "2026-03-01T12:35:01Z"}


def test_scores_table_shows_segments_and_formatted_scores() -> None:
    out = text(scores_renderable(SCORES))
    for segment in ("plan:enterprise", "region:emea", "touchpoint:onboarding"):
        assert segment in out
    line = next(ln for ln in out.splitlines() if "plan:enterprise" in ln)
    assert "42.9" in line and "12.3" in line and "81.2" in line and "2.35" in line
    assert "12%" in line and "140/140/140" in line
    low = next(ln for ln in out.splitlines() if "region:emea" in ln)
    assert "-12.5*" in low and "8/8/8" in low  # low sample flagged
    assert "window 1h, as of 2026-03-01T12:00:00Z" in out


def test_none_scores_show_as_en_dash() -> None:
    line = next(ln for ln in text(scores_renderable(SCORES)).splitlines()
                if "touchpoint:onboarding" in ln)
    assert line.count("–") == 5  # NPS, ±, CSAT, CES, high effort
    assert "None" not in line and "0/0/0" in line


def test_alerts_show_customer_score_owner_and_truncated_comment() -> None:
    out = text(alerts_renderable([ALERT, RECOVERED], comment_width=30))
    assert "DETRACTOR" in out and "RECOVERED" in out
    assert "cust-0042" in out and "cust-0007" in out
    assert "Dana Owner" in out and "no owner" in out
    assert "12:34:56" in out
    assert "The onboarding took three wee…" in out
    assert "nobody answered" not in out
    # newest first
    assert out.index("cust-0007") < out.index("cust-0042")


def test_alerts_keep_only_the_latest() -> None:
    many = [{**ALERT, "customer_id": f"cust-{i:04d}"} for i in range(25)]
    out = text(alerts_renderable(many, limit=5))
    assert "cust-0024" in out and "cust-0020" in out and "cust-0019" not in out


def test_truncate() -> None:
    assert truncate("short", 10) == "short"
    assert truncate("a  b\nc", 10) == "a b c"
    assert truncate("abcdefghijk", 5) == "abcd…"
    assert truncate(None, 5) == ""


def test_header_shows_urls_progress_and_error() -> None:
    st = DemoStatus(broker="127.0.0.1:9092", worker_url="http://127.0.0.1:6066", window="24h",
                    elapsed_s=75, duration_s=600, events_sent=1234, alerts=7,
                    error="/scores answered 503: not ready")
    out = text(demo_header(st))
    assert "127.0.0.1:9092" in out
    assert "http://127.0.0.1:6066/scores?window=24h" in out
    assert "http://127.0.0.1:6066/metrics" in out
    assert "1:15 / 10:00" in out and "1,234" in out and "alerts: 7" in out
    assert "503" in out
    endless = text(demo_header(DemoStatus(broker="b", worker_url="http://w", duration_s=0)))
    assert "until Ctrl+C" in endless


def test_empty_data_does_not_crash() -> None:
    st = DemoStatus(broker="b:9092", worker_url="http://h:1")
    for scores in (None, {}, {"window": "1h", "as_of": "x", "segments": []}):
        out = text(demo_view(st, scores, []))
        assert "no segment has responses" in out and "no alert yet" in out
    # a sparse alert (optional fields missing) still renders
    assert "cust-9" in text(alerts_renderable([{"kind": "detractor", "customer_id": "cust-9"}]))


def test_full_view_fits_a_narrow_terminal() -> None:
    st = DemoStatus(broker="b:9092", worker_url="http://h:1")
    out = text(demo_view(st, SCORES, [ALERT, RECOVERED]), width=80)
    assert all(len(ln) <= 80 for ln in out.splitlines())
    assert "DETRACTOR" in out


def test_plain_text_is_unchanged() -> None:
    table = score_table(SCORES["segments"], window="1h", as_of="2026-03-01T12:00:00Z")
    assert table.splitlines()[0].startswith("window 1h, as of 2026-03-01T12:00:00Z")
    assert "plan:enterprise" in table and "42.9" in table
    assert "(no segment has responses" in score_table([], window="1h", as_of="x")
    line = alert_line(ALERT)
    assert line.startswith("2026-03-01T12:34:56.789Z  DETRACTOR cust-0042  score 2")
    assert "owner: Dana Owner" in line
    assert "no owner" in alert_line(RECOVERED)
    assert "(was promoter)  priority urgent  owner: Dana Owner" in alert_line(
        {**ALERT, "priority": "urgent", "previous_category": "promoter"})
    assert "priority" not in line


# -- text from the topics cannot drive the terminal ------------------------------------------
HOSTILE = ["\x1b[2J\x1b[H", "\x9b31m", "line\nbreak", "cr\rreturn", "\x85next", "\u2028sep",
           "\u2029para", "\u202egnirts", "\x07bell", "\x7fdel", "\x00nul"]


def _raw_controls(text: str) -> list[str]:
    return [c for c in text if unicodedata.category(c) in ("Cc", "Zl", "Zp")
            or c in "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"]


@pytest.mark.parametrize("bad", HOSTILE)
def test_alert_lines_and_tables_show_control_characters_as_escapes(bad: str) -> None:
    alert = {"detected_at": "2026-10-31T14:05:00Z", "kind": "detractor", "customer_id": f"c{bad}",
             "score": 2, "previous_category": None, "owner": {"name": f"Ana{bad}"},
             "comment": f"rude{bad}agent"}
    line = render.alert_line(alert)
    assert not _raw_controls(line) and "\n" not in line
    assert "rude" in line and "agent" in line
    table = render.score_table([dict(_row('x', 10.0, 1.0, 40, 80.0, 2.0, 0.1), segment=f"plan:{bad}")], window="7d", as_of="x")
    assert all(not _raw_controls(row) for row in table.split("\n")) and table.count("\n") == 2
    console = Console(width=160, record=True, color_system=None, force_terminal=False)
    console.print(render.alerts_renderable([alert]))
    console.print(render.scores_renderable({"segments": [dict(_row('x', 10.0, 1.0, 40, 80.0, 2.0, 0.1), segment=f"plan:{bad}")]}))
    assert not _raw_controls(console.export_text().replace("\n", ""))


def test_printable_keeps_json_valid_and_text_whole() -> None:
    doc = {"comment": "".join(HOSTILE), "n": 1}
    line = render.printable(json.dumps(doc, ensure_ascii=False))
    assert not _raw_controls(line) and json.loads(line) == doc
    assert render.printable("Olá, mundo — ok") == "Olá, mundo — ok"


# -- target alerts ------------------------------------------------------------------------------
def _target(kind: str = "below_target", **over: Any) -> dict[str, Any]:
    """A target alert as the worker builds it (cxstream.core.targets)."""
    from cxstream.core.programs import define
    from cxstream.core.targets import build_target_alert
    from cxstream.core.windows import HOUR, Window

    program = define("tnps", "nps", target=50, turns=False)
    part = {"responses": 212, "score": 41.5, "margin_of_error": 9.8}
    doc = build_target_alert(kind, program, Window("1h", HOUR), "touchpoint:support",
                             1_772_366_400_000, part, 1_772_366_460_123)
    return {**doc, **over}


def test_a_target_alert_line_says_segment_program_score_target_and_window() -> None:
    line = alert_line(_target())
    assert line == ("2026-03-01T12:01:00.123Z  BELOW_TARGET  touchpoint:support  tnps NPS 41.5 "
                    "< target 50 over the 1h ending 2026-03-01T12:00:00Z (212 responses, ±9.8)")
    back = alert_line(_target("back_on_target", score=52.25))
    assert "BACK_ON_TARGET  touchpoint:support  tnps NPS 52.2 > target 50 " in back


def test_target_alert_lines_of_each_metric() -> None:
    csat = alert_line(_target(program="csat-delivery", metric="csat", score=75.0, target=80.0,
                              margin_of_error=6.04))
    assert "csat-delivery CSAT 75.0% < target 80% over the 1h" in csat and "±6.0)" in csat
    # CES: below target is more effort than the target allows, here a higher mean; no margin
    ces = alert_line(_target(program="ces-checkout", metric="ces", score=3.456, target=3.0,
                             margin_of_error=None))
    assert "ces-checkout CES 3.46 > target 3 over the 1h" in ces and "(212 responses)" in ces
    met = alert_line(_target("back_on_target", metric="ces", score=3.0, target=3.0))
    assert "CES 3.00 = target 3 " in met


def test_a_sparse_target_alert_does_not_crash() -> None:
    line = alert_line({"kind": "below_target"})
    assert "BELOW_TARGET" in line and "None" not in line
    out = text(alerts_renderable([{"kind": "back_on_target", "score": "x"}]))
    assert "BACK_ON_TARGET" in out and "None" not in out


def test_target_alerts_in_the_table_beside_customer_alerts() -> None:
    out = text(alerts_renderable([ALERT, _target(), RECOVERED]))
    assert "customer/segment" in out and "owner/program" in out and "comment/target" in out
    row = next(ln for ln in out.splitlines() if "BELOW_TARGET" in ln)
    assert "12:01:00" in row and "touchpoint:support" in row and "41.5" in row
    assert "tnps" in row and "< target 50 over the 1h (212 responses, ±9.8)" in row
    assert "cust-0042" in out and "Dana Owner" in out  # customer alerts as before
    # newest first
    assert out.index("cust-0007") < out.index("touchpoint:support") < out.index("cust-0042")
    # with customer alerts only, the headers are the customer alerts' own
    plain = text(alerts_renderable([ALERT]))
    assert "customer/segment" not in plain and "customer" in plain and "comment" in plain
    titled = text(alerts_renderable([_target()], title="target alerts, newest first"))
    assert "target alerts, newest first" in titled
    assert all(len(ln) <= 80 for ln in text(alerts_renderable([_target(), ALERT]), 80).splitlines())


@pytest.mark.parametrize("bad", HOSTILE)
def test_target_alert_text_cannot_drive_the_terminal(bad: str) -> None:
    alert = _target(segment_key=f"plan:{bad}", program=f"p{bad}", window=f"1h{bad}")
    line = alert_line(alert)
    assert not _raw_controls(line) and "\n" not in line
    console = Console(width=160, record=True, color_system=None, force_terminal=False)
    console.print(alerts_renderable([alert]))
    assert not _raw_controls(console.export_text().replace("\n", ""))
