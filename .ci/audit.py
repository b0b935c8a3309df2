"""Audit cxstream's pinned runtime dependencies for known vulnerabilities (CI step).

    python .ci/audit.py [--strict] [requirements-runtime.txt]

1. `pip-audit` checks every pin of requirements-runtime.txt against PyPI's vulnerability
   service (`--vulnerability-service pypi`: PyPI's JSON API, whose advisories come from OSV),
   without installing anything (`--no-deps --disable-pip`: the file pins the whole closure).
2. A pin pip-audit could not look up (PyPI answered nothing for that exact version, as
   registry mirrors that serve only the project-level JSON do) is looked up in the project's
   JSON instead when it is the latest release: that document lists the latest release's
   known vulnerabilities.

Exit status: 0 no known vulnerability; 1 a known vulnerability (upgrade within the bounds in
pyproject.toml, re-run deploy/lock_deps.py); 2 the vulnerability service is unreachable or
answered for no pin at all: CI fails with that message rather than pass unaudited; retry
later. Pins that still cannot be audited are listed as a warning, or fail with --strict.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPI = "https://pypi.org/pypi/{name}/json"


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[name.strip().lower()] = version.strip()
    return out


def pip_audit(path: Path) -> tuple[int, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip_audit", "-r", str(path), "--no-deps", "--disable-pip",
               "--vulnerability-service", "pypi", "--progress-spinner", "off", "--timeout", "30",
               "-f", "json", "-o", str(report)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if not report.exists():
            print(proc.stdout + proc.stderr, file=sys.stderr)
            return proc.returncode, {}
        return proc.returncode, json.loads(report.read_text())


def project_json(name: str) -> dict | None:
    """The project's PyPI JSON; None when PyPI cannot be reached (3 tries)."""
    for attempt in range(3):
        try:
            with urllib.request.urlopen(PYPI.format(name=name), timeout=30) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return {}
        except (urllib.error.URLError, TimeoutError, OSError):
            pass
        time.sleep(2 * (attempt + 1))
    return None


def main(argv: list[str]) -> int:
    strict = "--strict" in argv
    args = [a for a in argv if not a.startswith("--")]
    path = Path(args[0]) if args else ROOT / "requirements-runtime.txt"
    pinned = pins(path)
    code, report = pip_audit(path)
    if not report:
        print(f"audit: pip-audit could not run (exit {code}); see above", file=sys.stderr)
        return 2
    audited: dict[str, str] = {}
    vulnerable: list[str] = []
    skipped: list[str] = []
    for dep in report["dependencies"]:
        name = dep["name"].lower()
        if "skip_reason" in dep:
            skipped.append(name)
            continue
        audited[name] = "PyPI (this version)"
        vulnerable += [f"{name}=={dep['version']}: {v['id']} (fixed in {', '.join(v.get('fix_versions') or ['-'])})"
                       for v in dep.get("vulns", [])]
    unreachable, unauditable = [], []
    for name in skipped:
        doc = project_json(name)
        if doc is None:
            unreachable.append(name)
            continue
        latest = (doc.get("info") or {}).get("version")
        if latest != pinned.get(name):
            unauditable.append(f"{name}=={pinned.get(name)} (latest {latest})")
            continue
        audited[name] = "PyPI (latest release)"
        vulnerable += [f"{name}=={latest}: {v.get('id')} (fixed in {', '.join(v.get('fixed_in') or ['-'])})"
                       for v in doc.get("vulnerabilities") or [] if not v.get("withdrawn")]
    print(f"audit: {len(audited)} of {len(pinned)} pinned runtime packages checked against PyPI's "
          "vulnerability data")
    if vulnerable:
        print("audit: KNOWN VULNERABILITIES:\n  " + "\n  ".join(vulnerable), file=sys.stderr)
        print("audit: upgrade within the bounds of pyproject.toml, run `make test` and "
              "`python deploy/lock_deps.py`", file=sys.stderr)
        return 1
    if not audited or unreachable:
        print("audit: FAILED: PyPI's vulnerability service is unreachable "
              f"({', '.join(unreachable) or 'no pin could be looked up'}); the dependencies are "
              "NOT audited. Retry when pypi.org answers.", file=sys.stderr)
        return 2
    if unauditable:
        level = "FAILED" if strict else "WARNING"
        print(f"audit: {level}: no vulnerability data reachable for these exact versions: "
              + ", ".join(unauditable), file=sys.stderr)
        if strict:
            return 2
    print("audit: no known vulnerabilities")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
