"""Shared by the deploy tests: which metric names exist, and which ones a PromQL text uses.

Known metrics are read from the source (`cxstream/metrics.py`, and `cxstream/api/collector.py`
when present) rather than imported, so metrics produced by custom collectors at scrape time
count too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
RULE_FILES = (PROMETHEUS / "rules" / "recording.yml", PROMETHEUS / "rules" / "alerts.yml")
METRIC_SOURCES = (ROOT / "cxstream" / "metrics.py", ROOT / "cxstream" / "api" / "collector.py")

#: Metrics of issue 5 that another change adds to cxstream/metrics.py and cxstream/api/collector.py.
#: Used only while the source defines none of them (that change not merged yet); as soon as
#: the source has any of them, the source alone decides, so a renamed metric is caught.
PENDING_METRICS = frozenset({
    "cxstream_segment_nps_promoters", "cxstream_segment_nps_passives",
    "cxstream_segment_nps_detractors", "cxstream_segment_nps_responses",
    "cxstream_segment_csat_responses", "cxstream_segment_csat_satisfied",
    "cxstream_segment_ces_responses", "cxstream_segment_ces_effort_points",
    "cxstream_segment_ces_high_effort", "cxstream_segment_nps", "cxstream_segment_csat_percent",
    "cxstream_segment_ces_effort_mean", "cxstream_alert_delay_from_event_seconds",
    "cxstream_alert_delay_from_receipt_seconds", "cxstream_consumer_lag_messages",
    "cxstream_recovery_in_progress", "cxstream_recovery_remaining_messages",
    "cxstream_assigned_partitions", "cxstream_build_info",
})

#: Series Prometheus itself provides.
BUILTIN_SERIES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

_SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created", "_info")


def source_metric_names() -> set[str]:
    """Every `cxstream_*` string literal of the metric modules (metric family names)."""
    names: set[str] = set()
    for path in METRIC_SOURCES:
        if path.exists():
            names |= set(re.findall(r"""["'](cxstream_[a-z0-9_]+)["']""", path.read_text()))
    return names


def exposed_names(families: Iterable[str]) -> set[str]:
    """Family names plus the sample names prometheus_client derives from them."""
    out: set[str] = set()
    for name in families:
        base = name.removesuffix("_total")
        out |= {name, base, *(base + s for s in _SUFFIXES)}
    return out


def known_metrics() -> set[str]:
    source = source_metric_names()
    families = source if source & PENDING_METRICS else source | PENDING_METRICS
    return exposed_names(families) | BUILTIN_SERIES


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VAR = re.compile(r"\$\{?\w+(?::\w+)?\}?")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def referenced_series(promql: str) -> tuple[set[str], set[str]]:
    """(cxstream_* metric names, recording-rule names with a colon) used by an expression."""
    text = _GRAFANA_VAR.sub(" ", _STRING.sub(" ", promql))
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors such as [5m]
    idents = set(_IDENT.findall(text))
    return ({i for i in idents if i.startswith("cxstream_")},
            {i for i in idents if ":" in i})


def load_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(group["rules"])
    return rules


def recorded_names() -> set[str]:
    return {r["record"] for r in load_rules() if "record" in r}


def dashboard_exprs(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, expression) of every panel target, rows included, and of the variables."""
    def walk(panels: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    yield panel.get("title", "?"), target["expr"]
            yield from walk(panel.get("panels", []))

    yield from walk(dashboard.get("panels", []))
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var.get("query")
            text = query.get("query", "") if isinstance(query, dict) else str(query or "")
            inner = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", text)
            yield f"variable {var['name']}", inner.group(1) if inner else text
