#!/usr/bin/env python3
"""Print rules/recording.yml and rules/alerts.yml as one Prometheus Operator PrometheusRule.

    python deploy/prometheus/to_prometheusrule.py > deploy/k8s/monitoring/prometheusrule.yaml

The rule files stay the single source; tests/unit/deploy checks that the committed
PrometheusRule is this script's output. Text-based (no YAML library), so the rules keep
their formatting.
"""

from __future__ import annotations

import sys
from pathlib import Path

RULES = Path(__file__).resolve().parent / "rules"
FILES = ("recording.yml", "alerts.yml")

HEADER = """\
# GENERATED from deploy/prometheus/rules/*.yml by deploy/prometheus/to_prometheusrule.py:
# edit the rule files, then regenerate. For the Prometheus Operator; add the labels your
# Prometheus' ruleSelector needs (kube-prometheus-stack: release: <its release name>).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: cxstream
  labels:
    app.kubernetes.io/name: cxstream
spec:
  groups:
"""


def groups_text(path: Path) -> str:
    """The lines of the file's top-level `groups:` list, indented for `spec.groups`."""
    lines = path.read_text().splitlines()
    start = lines.index("groups:") + 1
    body = [("  " + line) if line.strip() else "" for line in lines[start:]]
    while body and not body[-1]:
        body.pop()
    return "\n".join(body) + "\n"


def render() -> str:
    return HEADER + "\n".join(groups_text(RULES / name) for name in FILES)


if __name__ == "__main__":
    sys.stdout.write(render())
