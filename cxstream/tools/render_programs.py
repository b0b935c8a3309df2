"""The demo's scores per survey program: one row per program (its metric, scale, score,
responses, target and whether the score meets it), as plain lines and as a rich panel.

A row is built from the program (its definition) and the API's document of one segment for
it (`GET /scores/{segment}?program=ID`), or None when the segment has no answers in the
window yet. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any, Sequence, TypeAlias

from rich import box
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from cxstream.core.programs import Program
from cxstream.tools.render import DASH, printable

#: (program, its document for the segment, or None: no answers there yet).
Item: TypeAlias = tuple[Program, dict[str, Any] | None]
HEADERS = ("program", "metric", "scale", "score", "responses", "target", "on target",
           "detail")
#: What each metric's score is, for the legend.
SCORE_MEANS = "score: nps −100..100, csat % satisfied, ces mean answer"


def _span(r: tuple[int, int]) -> str:
    return f"{r[0]}–{r[1]}"


def cells(program: Program, doc: dict[str, Any] | None) -> tuple[str, ...]:
    """The row of `program` (HEADERS), its text from the API made `printable`. A score below
    the minimum number of responses is flagged with `*`, as in the score table."""
    part = (doc or {}).get(program.metric) or {}
    responses = int(part.get("responses") or 0)
    value = part.get("mean") if program.metric == "ces" else part.get("score")
    if value is None:
        score = DASH
    elif program.metric == "ces":
        score = f"{value:.2f}"
    else:
        score = f"{value:.1f}" + ("%" if program.metric == "csat" else "")
    if value is not None and part.get("low_sample"):
        score += "*"
    target = DASH if program.target is None else f"{program.target:g}"
    meets = (doc or {}).get("meets_target")
    on_target = DASH if meets is None else "yes" if meets else "no"
    if program.metric == "nps":
        moe = part.get("margin_of_error")
        detail = DASH if moe is None else f"±{moe:.1f}"
    elif program.metric == "csat":
        assert program.satisfied is not None  # set for every csat program
        detail = f"satisfied {_span(program.satisfied)}"
    else:
        assert program.high_effort is not None  # set for every ces program
        share = part.get("high_effort_share")
        shown = DASH if share is None else f"{100 * share:.0f}%"
        detail = f"high effort {_span(program.high_effort)}: {shown}"
    return tuple(printable(c) for c in (program.id, program.metric, _span(program.scale),
                                        score, str(responses), target, on_target, detail))


def program_table(items: Sequence[Item], *, segment: str, window: str, as_of: str) -> str:
    """The plain-text table: a title line, a header line, one line per program."""
    widths = (16, 6, 6, 8, 9, 6, 9)
    right = {3, 4, 5}
    rows = [HEADERS, *(cells(p, doc) for p, doc in items)]

    def line(row: Sequence[str]) -> str:
        out = [f"{c:>{w}}" if i in right else f"{c:<{w}}"
               for i, (c, w) in enumerate(zip(row, widths))]
        return " ".join(out + [row[-1]]).rstrip()

    title = printable(f"scores per program, segment {segment}, window {window}, as of {as_of}"
                      f"   ({SCORE_MEANS}; * = fewer responses than the minimum)")
    return "\n".join([title, *(line(r) for r in rows)])


def programs_renderable(items: Sequence[Item], *, segment: str, window: str,
                        as_of: str | None) -> Panel:
    """The same table as a rich panel for the demo's live view."""
    table = Table(expand=False, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0))
    for i, name in enumerate(HEADERS):
        table.add_column(name, no_wrap=True, justify="right" if i in (3, 4, 5) else "left")
    for program, doc in items:
        row = cells(program, doc)
        meets = Text(row[6], style={"yes": "green", "no": "red"}.get(row[6], ""))
        table.add_row(*row[:6], meets, row[7])
    if not items:
        table.add_row(Text("(no programs)", style="dim"), *([""] * (len(HEADERS) - 1)))
    where = f"segment {segment}, window {window}, as of {as_of or '?'}"
    return Panel(table, title=printable(f"scores per program — {where}"), title_align="left",
                 padding=(0, 0), subtitle=f"{SCORE_MEANS}   * = below the minimum",
                 subtitle_align="left", border_style="green")
