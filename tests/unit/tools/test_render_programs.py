"""The demo's table of scores per program: each program on its own scale, its target and
whether the API says the score meets it; text from the API made printable."""

from __future__ import annotations

from rich.console import Console

from cxstream.core.programs import define
from cxstream.core.programscores import SegmentCounts, program_view
from cxstream.core.scoring import zero
from cxstream.tools.render_programs import cells, program_table, programs_renderable

CSAT = define("csat-delivery", "csat", scale=[1, 10], satisfied=[8, 10], target=80)
CES = define("ces-checkout", "ces", scale=[1, 7], target=3)
TNPS = define("tnps", "nps", turns=False)


def _doc(program, scores: list[int], min_responses: int = 2) -> dict:
    """The API's document of `program` for answers `scores` (the code the API runs)."""
    counts = zero()
    for score in scores:
        for position, value in program.increment(score):
            counts[position] += value
    group = SegmentCounts(zero(), {program.id: counts})
    return {"segment": "all", "window": "1h", "as_of": "2026-01-01T00:00:00Z",
            **program_view(group, program, min_responses=min_responses)}


def test_each_metric_on_its_own_scale_with_its_target() -> None:
    row = cells(CSAT, _doc(CSAT, [8, 9, 7, 10]))
    assert row == ("csat-delivery", "csat", "1–10", "75.0%", "4", "80", "no",
                   "satisfied 8–10")
    row = cells(CES, _doc(CES, [2, 3, 7, 1]))
    assert row[2:7] == ("1–7", "3.25", "4", "3", "no")
    assert row[7] == "high effort 6–7: 25%"
    assert cells(CES, _doc(CES, [2, 3]))[3:7] == ("2.50", "2", "3", "yes")
    row = cells(TNPS, _doc(TNPS, [10, 9, 6]))
    assert row[3:7] == ("33.3", "3", "–", "–") and row[7].startswith("±")


def test_no_answers_and_low_samples() -> None:
    assert cells(CSAT, None)[3:7] == ("–", "0", "80", "–")
    assert cells(CSAT, _doc(CSAT, [9], min_responses=30))[3] == "100.0%*"


def test_table_lines_and_panel() -> None:
    items = [(CES, _doc(CES, [2, 3])), (CSAT, None)]
    text = program_table(items, segment="all", window="1h", as_of="2026-01-01T00:00:00Z")
    lines = text.splitlines()
    assert lines[0].startswith("scores per program, segment all, window 1h")
    assert lines[1].split()[:3] == ["program", "metric", "scale"]
    assert lines[2].split() == ["ces-checkout", "ces", "1–7", "2.50", "2", "3", "yes",
                                "high", "effort", "6–7:", "0%"]
    console = Console(width=120, record=True)
    console.print(programs_renderable(items, segment="all", window="1h", as_of=None))
    shown = console.export_text()
    assert "ces-checkout" in shown and "csat-delivery" in shown and "satisfied 8–10" in shown


def test_text_from_the_api_cannot_drive_the_terminal() -> None:
    doc = _doc(CSAT, [9, 9])
    doc["csat"]["score"] = None  # a score the API did not give: shown as a dash
    assert "\x1b" not in program_table([(CSAT, doc)], segment="all\x1b[2J", window="1h",
                                       as_of="x\x1b]0;")
