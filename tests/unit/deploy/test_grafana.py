"""deploy/grafana: the dashboard parses, every query uses known metrics or recording rules and
is valid PromQL (checked by promtool), and the provisioning matches docker-compose.yml."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .promql_names import DEPLOY, ROOT, dashboard_exprs, known_metrics, recorded_names, referenced_series

GRAFANA = DEPLOY / "grafana"
DASHBOARD_FILE = GRAFANA / "dashboards" / "cxstream.json"
DASHBOARD = json.loads(DASHBOARD_FILE.read_text())
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def all_panels(panels: list[dict]) -> list[dict]:
    out = []
    for panel in panels:
        out.append(panel)
        out.extend(all_panels(panel.get("panels", [])))
    return out


PANELS = all_panels(DASHBOARD["panels"])
VARIABLES = {v["name"]: v for v in DASHBOARD["templating"]["list"]}


def test_dashboard_identity() -> None:
    assert DASHBOARD["uid"] == "cxstream-overview" and DASHBOARD["title"] == "cxstream"
    ids = [p["id"] for p in PANELS]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in PANELS:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]


def test_datasource_is_the_ds_prometheus_variable() -> None:
    assert VARIABLES["DS_PROMETHEUS"]["type"] == "datasource"
    assert VARIABLES["DS_PROMETHEUS"]["query"] == "prometheus"
    for panel in PANELS:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]


def test_every_query_uses_known_metrics_and_recording_rules() -> None:
    known, recorded = known_metrics(), recorded_names()
    exprs = list(dashboard_exprs(DASHBOARD))
    assert len(exprs) > 20
    for title, expr in exprs:
        metrics, rules = referenced_series(expr)
        assert metrics or rules or 'job="cxstream"' in expr, f"{title}: {expr} uses no cxstream series"
        assert metrics <= known, f"{title}: unknown metrics {sorted(metrics - known)}"
        assert rules <= recorded, f"{title}: unknown recording rules {sorted(rules - recorded)}"


def test_variables_used_are_defined() -> None:
    used = set()
    for _, expr in dashboard_exprs(DASHBOARD):
        used |= set(re.findall(r"\$\{?(\w+)", expr))
    for panel in PANELS:
        used |= set(re.findall(r"\$\{?(\w+)", panel.get("title", "")))
    assert {u for u in used if not u.startswith("__")} <= set(VARIABLES)
    assert {"segment", "window"} <= set(VARIABLES)


def test_required_panels_are_there() -> None:
    exprs = "\n".join(e for _, e in dashboard_exprs(DASHBOARD))
    for window in ("24h", "7d", "30d"):
        assert f'segment_window:cxstream_nps:score{{segment=~"$segment",window="{window}"}}' in exprs
    for needle in ("segment_window:cxstream_csat:percent", "segment_window:cxstream_ces:mean",
                   "segment_window:cxstream_segment_nps_responses:sum",
                   "topic_outcome:cxstream_events:rate5m", "code:cxstream_deadletters:rate5m",
                   "kind:cxstream_alerts:rate5m", "channel_outcome:cxstream_notifications:rate5m",
                   "kind:cxstream_alert_delay_from_event_seconds:quantile5m",
                   "topic_partition:cxstream_consumer_lag_messages:max",
                   "cxstream_recovery_in_progress", "partition:cxstream_stream_time_lag:seconds"):
        assert needle in exprs, needle


def test_queries_are_valid_promql(tmp_path: Path) -> None:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is not installed: run `make system-deps` (Debian package `prometheus`)")
    rules = []
    for i, (_, expr) in enumerate(dashboard_exprs(DASHBOARD)):
        expr = expr.replace("$segment", ".*").replace("$window", "24h")
        rules.append({"record": f"dashboard_query_{i}", "expr": expr})
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([exe, "check", "rules", str(path)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_provisioning_matches_compose() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = ds["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    host, port = re.fullmatch(r"http://([\w-]+):(\d+)", source["url"]).groups()
    assert host in COMPOSE["services"]
    assert any(p.endswith(f":{port}") for p in COMPOSE["services"][host]["ports"])

    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "cxstream.yml").read_text())
    (provider,) = providers["providers"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in COMPOSE["services"]["grafana"]["volumes"]}
    assert (ROOT / mounts[provider["options"]["path"]]).resolve() == DASHBOARD_FILE.parent.resolve()
    for sub in ("datasources", "dashboards"):
        target = f"/etc/grafana/provisioning/{sub}"
        assert (ROOT / mounts[target]).resolve() == (GRAFANA / "provisioning" / sub).resolve()
