"""Provisioning of the local broker's Kafka jars: ``deploy/kafka/`` of the checkout (where
the pom, the server.properties template and the log4j2 config live), the jars resolved from
Maven Central into its ``lib/`` once and again only when the pom changes, and the file lock
that serialises such work across processes (also used to serialise broker starts).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from cxstream.tools.broker_errors import BrokerError

#: ``deploy/kafka/`` of the checkout this package is installed from (editable install).
KAFKA_DIR = Path(__file__).resolve().parents[2] / "deploy" / "kafka"

_MAVEN_TIMEOUT_S = 900.0

#: The callback a caller passes to hear what a slow step is doing (nothing by default).
Progress = Callable[[str], None]


def kafka_dir() -> Path:
    """``deploy/kafka/`` of the checkout; the pom and broker config live there, not in the wheel."""
    if not (KAFKA_DIR / "pom.xml").is_file():
        raise BrokerError(f"{KAFKA_DIR / 'pom.xml'} not found: the local broker needs cxstream "
                          "installed from a checkout (pip install -e .); or run Kafka elsewhere "
                          "and set CXSTREAM_BROKER")
    return KAFKA_DIR


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise Maven runs / broker starts across processes (two test sessions, CLI + tests)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _jars_current(lib: Path, digest: str) -> bool:
    stamp = lib / ".pom.sha256"
    return (stamp.is_file() and stamp.read_text().strip() == digest
            and any(lib.glob("kafka_2.13-*.jar")))


def ensure_jars(progress: Progress = print) -> Path:
    """Return ``deploy/kafka/lib`` with Kafka's jars, running Maven only when they are missing
    or the pom changed since they were resolved (a stamp in ``lib/`` holds the pom's hash).

    Maven resolves into a staging dir that is then renamed to ``lib/``, so a failed or
    interrupted download never leaves a half-filled ``lib/`` that looks complete, and a broker
    already running from the old jars keeps its open files. A file lock makes concurrent
    callers (two test sessions, the CLI) wait for one Maven run instead of racing.
    """
    kdir = kafka_dir()
    lib = kdir / "lib"
    digest = hashlib.sha256((kdir / "pom.xml").read_bytes()).hexdigest()
    if _jars_current(lib, digest):
        return lib
    work = kdir / "target"  # git-ignored, like lib/
    with _file_lock(work / "resolve.lock"):
        if _jars_current(lib, digest):  # another process resolved them while we waited
            return lib
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError("Maven is needed once to download Kafka's jars from Maven Central: "
                              "apt-get install -y maven (or run `make install`)")
        staging = work / f"lib-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        progress("resolving Apache Kafka jars from Maven Central into "
                 f"{lib} (first time only, about a minute)...")
        started = time.monotonic()
        try:
            proc = subprocess.run(
                [mvn, "-q", "-B", "-f", str(kdir / "pom.xml"), "dependency:copy-dependencies",
                 f"-DoutputDirectory={staging}", "-DincludeScope=runtime", "-Dstyle.color=never"],
                capture_output=True, text=True, cwd=kdir, stdin=subprocess.DEVNULL,
                timeout=_MAVEN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            shutil.rmtree(staging, ignore_errors=True)
            raise BrokerError(f"Maven did not finish within {_MAVEN_TIMEOUT_S:.0f}s; is Maven "
                              "Central (or your mirror in ~/.m2/settings.xml) reachable?") from None
        if proc.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            shutil.rmtree(staging, ignore_errors=True)
            output = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
            tail = "\n".join(output.splitlines()[-30:])
            raise BrokerError(f"Maven could not resolve Kafka (exit {proc.returncode}); is Maven "
                              f"Central reachable? Last lines of its output:\n{tail}")
        (staging / ".pom.sha256").write_text(digest + "\n")
        old = work / f"lib-old-{os.getpid()}"
        if lib.exists():
            lib.rename(old)
        staging.rename(lib)
        shutil.rmtree(old, ignore_errors=True)
        jars = len(list(lib.glob("*.jar")))
        progress(f"resolved {jars} jars in {time.monotonic() - started:.0f}s")
    return lib
