"""Human-readable text for the CLI and the demo: score tables and alert lines."""

from __future__ import annotations

from typing import Any


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
            f"{r['segment'][:26]:<26} {_num(nps['score']):>7}{flag(nps)}{_num(nps['margin_of_error']):>5} "
            f"{nps['responses']:>6}   {_num(csat['score']):>6}{flag(csat)}{csat['responses']:>6}   "
            f"{_num(ces['mean'], 2):>5}{flag(ces)}{_num(ces['high_effort_share'], 2):>5} {ces['responses']:>6}")
    if not rows:
        lines.append("(no segment has responses in this window)")
    return "\n".join(lines)


def alert_line(a: dict[str, Any]) -> str:
    owner = (a.get("owner") or {}).get("name") or "no owner"
    comment = f' "{a["comment"]}"' if a.get("comment") else ""
    return (f"{a['detected_at']}  {a['kind'].upper():<9} {a['customer_id']}  score {a['score']} "
            f"(was {a['previous_category'] or 'no answer'})  owner: {owner}{comment}")
