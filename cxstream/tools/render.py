"""Human-readable output for the CLI and the demo: plain score tables and alert lines, and the
rich renderables of the demo's live terminal view. No I/O here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from rich import box
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from cxstream.core.notification import is_target_alert
from cxstream.core.textsafe import CONTROL


#: What a terminal acts on instead of showing: the control characters and separators of
#: `textsafe.CONTROL` (ESC starts colour and cursor sequences, U+009B is a one-character
#: CSI), and the bidirectional overrides that make text read in another order than stored.
_CONTROL = re.compile(f"[{CONTROL}\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    """`text` for a terminal line: every control character (newlines too) shown as a JSON
    escape such as ``\\u001b``, so text from the topics can neither move the cursor, recolour
    or clear the screen, nor start a line of its own; JSON stays valid JSON."""
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", str(text))


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def score_table(rows: list[dict[str, Any]], *, window: str, as_of: str) -> str:
    lines = [f"window {window}, as of {as_of}   (* = fewer responses than the minimum)",
             f"{'segment':<26} {'NPS':>7} {'±':>5} {'n':>6}   {'CSAT':>6} {'n':>6}   "
             f"{'CES':>5} {'high':>5} {'n':>6}"]
    for r in rows:
        nps, csat, ces = r["nps"], r["csat"], r["ces"]
        flag = lambda part: "*" if part["low_sample"] else " "  # noqa: E731
        lines.append(
            f"{printable(r['segment'])[:26]:<26} {_num(nps['score']):>7}{flag(nps)}{_num(nps['margin_of_error']):>5} "
            f"{nps['responses']:>6}   {_num(csat['score']):>6}{flag(csat)}{csat['responses']:>6}   "
            f"{_num(ces['mean'], 2):>5}{flag(ces)}{_num(ces['high_effort_share'], 2):>5} {ces['responses']:>6}")
    if not rows:
        lines.append("(no segment has responses in this window)")
    return "\n".join(lines)


def alert_line(a: dict[str, Any]) -> str:
    """One line per alert, its text from the topic made `printable`: a customer alert's
    customer, score, priority (when it has one) and owner; a target alert's segment, program, score against the target,
    window and responses (`target_text`)."""
    if a.get("kind") == "segment_shift":
        return printable(f"{a.get('detected_at') or '?'}  SEGMENT_SHIFT  "
                         f"{a.get('segment_key') or '?'}  NPS {a.get('direction') or '?'} "
                         f"{_shift_text(a)}")
    if is_target_alert(a):
        return printable(f"{a.get('detected_at') or '?'}  {str(a['kind']).upper()}  "
                         f"{a.get('segment_key') or '?'}  {a.get('program') or '?'} "
                         f"{target_text(a)}")
    owner = (a.get("owner") or {}).get("name") or "no owner"
    comment = f' "{a["comment"]}"' if a.get("comment") else ""
    prio = f"  priority {a['priority']}" if a.get("priority") else ""
    return printable(f"{a['detected_at']}  {a['kind'].upper():<9} {a['customer_id']}  score "
                     f"{a['score']} (was {a['previous_category'] or 'no answer'}){prio}  owner: "
                     f"{owner}{comment}")


# -- target alerts ------------------------------------------------------------------------------
# Segment alerts (`cxstream.core.notification.is_target_alert`: targets and trends) have no
# customer, owner or comment.
_METRIC_NAMES = {"nps": "NPS", "csat": "CSAT", "ces": "CES"}


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def _shift_text(a: dict[str, Any]) -> str:
    """A `segment_shift`'s numbers: `-0.5 (was 28.5, -29.0 [-48.7, -9.4]) over the 7d
    ending …`."""
    interval = a.get("interval") if isinstance(a.get("interval"), list) else [None, None]
    low, high = (list(interval) + [None, None])[:2]
    return (f"{_num(_number(a.get('nps')))} (was {_num(_number(a.get('previous_nps')))}, "
            f"{_signed(_number(a.get('change')))} [{_num(_number(low))}, "
            f"{_num(_number(high))}]) over the {a.get('window') or '?'} ending "
            f"{a.get('window_end') or '?'} ({a.get('responses')} and "
            f"{a.get('previous_responses')} responses)")


def trend_table(body: dict[str, Any]) -> str:
    """The `/trends` answer as a table: each segment's NPS now and in the window before, the
    change with its interval, and `yes` where it is significant."""
    lines = [f"window {body['window']} against the {body['window']} before it, as of "
             f"{body['as_of']}   (level {body['level']}, at least {body['min_responses']} "
             "responses each)",
             f"{'segment':<26} {'NPS':>7} {'n':>6} {'before':>7} {'n':>6} {'change':>7} "
             f"{'interval':>17}  significant"]
    for r in body["segments"]:
        low, high = r["interval"]
        lines.append(
            f"{printable(r['segment'])[:26]:<26} {_num(r['nps']):>7} {r['responses']:>6} "
            f"{_num(r['previous_nps']):>7} {r['previous_responses']:>6} "
            f"{_signed(r['change']):>7} {f'[{_num(low)}, {_num(high)}]':>17}  "
            f"{'yes' if r['significant'] else 'no'}")
    if not body["segments"]:
        lines.append("(no segment has NPS responses in both windows)")
    return "\n".join(lines)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


def target_score(a: dict[str, Any]) -> str:
    """A target alert's score on its metric's terms: NPS `-12.5`, CSAT `75.0%`, CES `3.42`
    (an en dash when missing)."""
    score, metric = _number(a.get("score")), a.get("metric")
    if score is None:
        return DASH
    if metric == "ces":
        return f"{score:.2f}"
    return f"{score:.1f}" + ("%" if metric == "csat" else "")


def _relation(score: float | None, target: float | None) -> str:
    """How the score compares with the target, as it is: for CES, below target may be above
    it (more effort than the target allows), so no direction is assumed."""
    if score is None or target is None:
        return "vs"
    return "<" if score < target else ">" if score > target else "="


def target_detail(a: dict[str, Any], *, ending: bool = True) -> str:
    """`< target 50 over the 1h ending 2026-03-01T12:00:00Z (212 responses, ±9.8)`: the
    score's relation to the target, the window (without its end unless `ending`) and its
    responses."""
    metric = a.get("metric")
    target = _number(a.get("target"))
    goal = DASH if target is None else f"{target:g}" + ("%" if metric == "csat" else "")
    window = f"over the {a.get('window') or '?'}"
    if ending and a.get("window_end"):
        window += f" ending {a['window_end']}"
    moe = _number(a.get("margin_of_error"))
    spread = "" if moe is None else f", ±{moe:.1f}"
    return (f"{_relation(_number(a.get('score')), target)} target {goal} {window} "
            f"({a.get('responses') if a.get('responses') is not None else '?'} "
            f"responses{spread})")


def target_text(a: dict[str, Any]) -> str:
    """`NPS 41.5 < target 50 over the 1h ending … (212 responses, ±9.8)`."""
    metric = a.get("metric")
    name = _METRIC_NAMES.get(metric, str(metric)) if isinstance(metric, str) else "score"
    return f"{name} {target_score(a)} {target_detail(a)}"


# -- the demo's live terminal view (rich) ------------------------------------------------------
# Pure: these build rich renderables from the /scores JSON body and alert dicts; the demo puts
# them in a rich.live.Live. Scores the API reports as null show as an en dash.

DASH = "–"


@dataclass(frozen=True, slots=True)
class DemoStatus:
    """What the header of the demo's live view shows."""

    broker: str
    worker_url: str
    window: str = "1h"
    elapsed_s: float = 0.0
    duration_s: float = 0.0  # <= 0: until Ctrl+C
    events_sent: int = 0
    alerts: int = 0
    state: str = "running"
    error: str | None = None  # the last failed /scores refresh, if the latest one failed

    @property
    def scores_url(self) -> str:
        return f"{self.worker_url}/scores?window={self.window}"

    @property
    def metrics_url(self) -> str:
        return f"{self.worker_url}/metrics"


def fmt(value: float | None, digits: int = 1, *, dash: str = DASH) -> str:
    return dash if value is None else f"{value:.{digits}f}"


def truncate(text: str | None, width: int) -> str:
    """`text` on one line, at most `width` characters (an ellipsis marks a cut)."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[:max(width - 1, 0)] + "…"


def _clock(seconds: float) -> str:
    s = max(int(seconds), 0)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def demo_header(st: DemoStatus) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("broker", st.broker)
    grid.add_row("worker", st.worker_url)
    grid.add_row("scores API", st.scores_url)
    grid.add_row("metrics", st.metrics_url)
    total = f" / {_clock(st.duration_s)}" if st.duration_s > 0 else "  (until Ctrl+C)"
    grid.add_row("elapsed", f"{_clock(st.elapsed_s)}{total}")
    grid.add_row("events sent", f"{st.events_sent:,}    alerts: {st.alerts:,}")
    if st.error:
        grid.add_row(Text("scores", style="bold red"), Text(truncate(st.error, 100), style="red"))
    return Panel(grid, title=f"cxstream demo — {st.state}", title_align="left", border_style="cyan")


def _flagged(text: str, part: dict[str, Any]) -> Text:
    return Text(text + ("*" if part.get("low_sample") else " "),
                style="dim" if part.get("low_sample") else "")


def _nps_style(score: float | None) -> str:
    if score is None:
        return ""
    return "green" if score >= 30 else "red" if score < 0 else "yellow"


def scores_renderable(body: dict[str, Any] | None) -> Panel:
    """The /scores body as a table: one row per segment (NPS ± margin, CSAT, CES, responses)."""
    body = body or {}
    rows = body.get("segments") or []
    table = Table(expand=False, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0))
    table.add_column("segment", overflow="ellipsis", no_wrap=True, min_width=12, max_width=34)
    table.add_column("NPS", justify="right", no_wrap=True, min_width=7)
    table.add_column("±", justify="right", no_wrap=True, min_width=4)
    table.add_column("CSAT%", justify="right", no_wrap=True, min_width=6)
    table.add_column("CES", justify="right", no_wrap=True, min_width=5)
    table.add_column("effort", justify="right", no_wrap=True, min_width=6)
    table.add_column("responses", justify="right", no_wrap=True, min_width=11)
    for r in rows:
        nps, csat, ces = r.get("nps") or {}, r.get("csat") or {}, r.get("ces") or {}
        share = ces.get("high_effort_share")
        nps_cell = _flagged(fmt(nps.get("score")), nps)
        nps_cell.stylize(_nps_style(nps.get("score")))
        table.add_row(
            printable(r.get("segment", "?")), nps_cell, fmt(nps.get("margin_of_error")),
            _flagged(fmt(csat.get("score")), csat), _flagged(fmt(ces.get("mean"), 2), ces),
            DASH if share is None else f"{100 * share:.0f}%",
            f"{nps.get('responses', 0)}/{csat.get('responses', 0)}/{ces.get('responses', 0)}")
    if not rows:
        table.add_row(Text("(no segment has responses in this window yet)", style="dim"),
                      "", "", "", "", "", "")
    where = f"window {body.get('window', '?')}, as of {body.get('as_of', '?')}"
    return Panel(table, title=f"scores per segment — {where}", title_align="left", padding=(0, 0),
                 subtitle="effort: share of CES 4-5   responses: NPS/CSAT/CES   * = below the minimum",
                 subtitle_align="left", border_style="blue")


def alerts_renderable(alerts: Sequence[dict[str, Any]], *, limit: int = 10,
                      comment_width: int = 48,
                      title: str = "latest alerts, newest first") -> Panel:
    """The latest alerts, newest first. A target alert fills the same columns with its
    segment, score, program and the rest (`target_detail`); the headers then name both."""
    latest = list(alerts)[-limit:][::-1] if limit > 0 else []
    both = any(is_target_alert(a) for a in latest)
    table = Table(expand=True, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0))
    table.add_column("detected", no_wrap=True, min_width=8)
    table.add_column("kind", no_wrap=True, min_width=9)
    table.add_column("customer/segment" if both else "customer", no_wrap=True,
                     overflow="ellipsis", min_width=9, max_width=24)
    table.add_column("score", justify="right", no_wrap=True, min_width=5)
    table.add_column("owner/program" if both else "owner", no_wrap=True, overflow="ellipsis",
                     min_width=8, max_width=22)
    table.add_column("comment/target" if both else "comment", no_wrap=True,
                     overflow="ellipsis", ratio=1, min_width=10)
    for a in latest:
        kind = str(a.get("kind") or "?")
        detected = str(a.get("detected_at") or "")
        style = "bold red" if kind in ("detractor", "below_target") else "bold green"
        cells: tuple[str, str, str, str]
        if kind == "segment_shift":
            style = "bold red" if a.get("direction") == "down" else "bold green"
            cells = (str(a.get("segment_key") or "?"), _num(_number(a.get("change"))),
                     f"NPS {a.get('direction') or '?'}", _shift_text(a))
        elif is_target_alert(a):
            cells = (str(a.get("segment_key") or "?"), target_score(a),
                     str(a.get("program") or "?"), target_detail(a, ending=False))
        else:
            owner = (a.get("owner") or {}).get("name") or "no owner"
            cells = (str(a.get("customer_id", "?")), fmt(a.get("score"), 0), owner,
                     truncate(a.get("comment"), comment_width) or DASH)
        table.add_row(detected[11:19] if len(detected) >= 19 else detected,
                      Text(kind.upper(), style=style), *(printable(c) for c in cells))
    if not latest:
        table.add_row(Text("(no alert yet)", style="dim"), "", "", "", "", "")
    return Panel(table, title=title, title_align="left", padding=(0, 0),
                 border_style="magenta")


def demo_view(status: DemoStatus, scores: dict[str, Any] | None,
              alerts: Sequence[dict[str, Any]], *, alert_limit: int = 10) -> Group:
    """The whole live view: header, score table, latest alerts."""
    return Group(demo_header(status), scores_renderable(scores),
                 alerts_renderable(alerts, limit=alert_limit))
