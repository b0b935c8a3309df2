"""deploy/prometheus: promtool accepts the configuration and the rules, the rules' unit tests
pass, every alert is documented and tested, and every series the rules use exists.

promtool is required: without it these tests fail (never skip). `make system-deps` installs
it (Debian package `prometheus`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .promql_names import (
    PROMETHEUS, ROOT, RULE_FILES, known_metrics, load_rules, recorded_names, referenced_series,
)

CONFIG = PROMETHEUS / "prometheus.yml"
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
ALERT_RULES_DOC = ROOT / "docs" / "operating" / "alert-rules.md"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is not installed: run `make system-deps` "
                    "(it installs the Debian package `prometheus`, which provides promtool)")
    return subprocess.run([exe, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{' '.join(result.args)}\n{result.stdout}\n{result.stderr}"


def test_promtool_check_config() -> None:
    # Also checks that the rule files the config names exist and are valid.
    assert_ok(promtool("check", "config", str(CONFIG.relative_to(ROOT))))


def test_promtool_check_rules() -> None:
    assert_ok(promtool("check", "rules", *(str(p.relative_to(ROOT)) for p in RULE_FILES)))


def test_promtool_test_rules() -> None:
    assert RULE_TESTS, "no promtool rule tests in deploy/prometheus/tests"
    assert_ok(promtool("test", "rules", *(str(p.relative_to(ROOT)) for p in RULE_TESTS)))


def test_config_loads_every_rule_file_and_scrapes_job_cxstream() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert sorted((CONFIG.parent / f).resolve() for f in config["rule_files"]) == \
        sorted(p.resolve() for p in RULE_FILES)
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "cxstream")
    assert job.get("metrics_path", "/metrics") == "/metrics"


def test_every_series_the_rules_use_exists() -> None:
    known, recorded = known_metrics(), recorded_names()
    for rule in load_rules():
        metrics, rules = referenced_series(rule["expr"])
        name = rule.get("record") or rule.get("alert")
        assert metrics <= known, f"{name}: unknown metrics {sorted(metrics - known)}"
        assert rules <= recorded, f"{name}: unknown recording rules {sorted(rules - recorded)}"
        for text in rule.get("annotations", {}).values():
            mentioned = set(re.findall(r"\bcxstream_[a-z0-9_]+", text))
            assert mentioned <= known, f"{name}: annotation names unknown {sorted(mentioned - known)}"


def test_recording_rule_names_follow_the_convention() -> None:
    names = [r["record"] for r in load_rules() if "record" in r]
    for name in names:
        assert re.fullmatch(r"[a-z_]+:cxstream_[a-z0-9_]+:[a-z0-9_]+", name), name


def test_every_alert_has_severity_runbook_and_promtool_tests() -> None:
    alerts = [r for r in load_rules() if "alert" in r]
    tested = "\n".join(p.read_text() for p in RULE_TESTS)
    for rule in alerts:
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert rule["annotations"]["summary"].strip(), name
        assert len(rule["annotations"]["description"]) > 80, f"{name}: say what to do"
        # firing (expected with labels) and not firing (an empty expectation) in the tests
        firing = re.findall(rf"alertname: {name}\n\s+exp_alerts:\n\s+- exp_labels", tested)
        quiet = re.findall(rf"alertname: {name}\n\s+exp_alerts: \[\]", tested)
        assert firing and quiet, f"{name}: promtool tests must show it firing and not firing"


def test_readme_lists_every_alert() -> None:
    readme = ALERT_RULES_DOC.read_text()
    assert "# Alert rules" in readme
    section = readme.split("# Alert rules", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(Cxstream\w+)` \|", section, flags=re.M))
    assert listed == {r["alert"] for r in load_rules() if "alert" in r}


def test_prometheusrule_manifest_is_generated_from_the_rule_files() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("to_prometheusrule",
                                                  PROMETHEUS / "to_prometheusrule.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    manifest = ROOT / "deploy" / "k8s" / "monitoring" / "prometheusrule.yaml"
    assert manifest.read_text() == module.render(), (
        "deploy/k8s/monitoring/prometheusrule.yaml is out of date: run "
        "python deploy/prometheus/to_prometheusrule.py > deploy/k8s/monitoring/prometheusrule.yaml")
    groups = [g for p in RULE_FILES for g in yaml.safe_load(p.read_text())["groups"]]
    assert yaml.safe_load(manifest.read_text())["spec"]["groups"] == groups


def test_rule_files_are_found_relative_to_the_config() -> None:
    # The same directory is mounted at /etc/prometheus in docker-compose.yml.
    config = yaml.safe_load(CONFIG.read_text())
    for rel in config["rule_files"]:
        assert not Path(rel).is_absolute() and (CONFIG.parent / rel).is_file(), rel
