#!/usr/bin/env bash
# Installs the Debian packages cxstream's local broker and tests need, only when missing:
# Java and Maven for the local Kafka broker, Prometheus (`prometheus` and `promtool`) for
# the metrics tests, which start their own Prometheus on a free port, and a C compiler and
# the Python headers, with which the install compiles the core (setup.py).
set -euo pipefail
need=()
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
python3 - <<'PY' || need+=(python3-dev)
import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))
PY
want_prometheus=0
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  want_prometheus=1
fi
if [ ${#need[@]} -eq 0 ] && [ "$want_prometheus" -eq 0 ]; then
  exit 0
fi
all=("${need[@]}")
[ "$want_prometheus" -eq 1 ] && all+=(prometheus)
if [ "$(id -u)" -ne 0 ]; then
  echo "missing: ${all[*]} — install them with: sudo apt-get install -y ${all[*]}" >&2
  exit 1
fi
echo "installing ${all[*]} (apt-get)..." >&2
apt-get update -qq
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ "$want_prometheus" -eq 1 ]; then
  # Only the binaries are needed (no node exporter). The package enables a system service on
  # port 9090; the tests never use it (they run their own on free ports), so stop it again
  # when this script was the one to install it.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    echo "prometheus installed; its system service (port 9090) was stopped and disabled" \
         "(cxstream's tests start their own)" >&2
  fi
fi
