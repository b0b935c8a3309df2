"""A local single-node Kafka (KRaft) for development, demos and tests — no Docker needed.

The jars come from Maven Central through `deploy/kafka/pom.xml` (resolved once, into the
git-ignored `deploy/kafka/lib/`); storage is formatted on first start; the broker runs
detached with its log in the data dir. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

KAFKA_DIR = Path(__file__).resolve().parents[1] / "deploy" / "kafka"


class BrokerError(RuntimeError):
    """The local broker cannot be provisioned or started; the message says what to do."""


@dataclass(frozen=True, slots=True)
class StartResult:
    bootstrap: str
    pid: int
    log_path: Path
    already_running: bool


@dataclass(frozen=True, slots=True)
class BrokerStatus:
    running: bool
    pid: int | None
    port: int
    log_path: Path
    data_dir: Path


def _kafka_dir() -> Path:
    if not (KAFKA_DIR / "pom.xml").is_file():
        raise BrokerError(f"{KAFKA_DIR}/pom.xml not found: run cxstream from a checkout "
                          "(pip install -e .) to use the local broker, or set CXSTREAM_BROKER")
    return KAFKA_DIR


def ensure_jars(progress: Callable[[str], None] = print) -> Path:
    """Resolve Kafka's jars with Maven when missing or when the pom changed."""
    kdir = _kafka_dir()
    lib = kdir / "lib"
    stamp = lib / ".pom.sha256"
    digest = hashlib.sha256((kdir / "pom.xml").read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text().strip() == digest and any(lib.glob("kafka_2.13-*.jar")):
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven is needed to fetch Kafka's jars: apt-get install -y maven "
                          "(or run `make install`)")
    if lib.exists():
        shutil.rmtree(lib)
    progress("resolving Apache Kafka jars from Maven Central (first time only, ~1 min)...")
    started = time.monotonic()
    proc = subprocess.run(
        [mvn, "-q", "-B", "-f", str(kdir / "pom.xml"), "dependency:copy-dependencies",
         f"-DoutputDirectory={lib}", "-DincludeScope=runtime"],
        capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise BrokerError(f"Maven could not resolve Kafka (exit {proc.returncode}); is Maven "
                          f"Central reachable?\n{tail}")
    stamp.write_text(digest)
    progress(f"resolved {len(list(lib.glob('*.jar')))} jars in {time.monotonic() - started:.0f}s")
    return lib


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child counts as dead
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return True


async def _metadata_round_trip(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # "Unable connect" while the broker boots is expected
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return bool(cluster.get("brokers")) and cluster.get("controller_id", -1) >= 0
    except (KafkaError, OSError):
        return False
    finally:
        try:
            await admin.close()
        except Exception:  # noqa: BLE001 - closing a client that never connected
            pass
        quiet.setLevel(level)


def wait_ready(bootstrap: str, timeout_s: float = 60.0, *, alive: Callable[[], bool] | None = None) -> None:
    """Wait until a broker answers a metadata request and has a controller."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise BrokerError("the broker process exited during start-up")
        if asyncio.run(_metadata_round_trip(bootstrap)):
            return
        time.sleep(0.5)
    raise BrokerError(f"no Kafka broker answered at {bootstrap} within {timeout_s:.0f}s; "
                      "start one with `cxstream broker start` or check CXSTREAM_BROKER")


@dataclass
class LocalBroker:
    port: int = 9092
    data_dir: Path = field(default_factory=lambda: Path(".cxstream/kafka"))
    controller_port: int | None = None

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid) else None

    def _configure(self, lib: Path) -> Path:
        """Write server.properties and format storage on first start (ports kept after)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = self.data_dir / "server.properties"
        logs = self.data_dir / "data"
        ports_file = self.data_dir / "ports"
        if ports_file.is_file():
            port, controller = (int(x) for x in ports_file.read_text().split())
            if port != self.port:
                raise BrokerError(f"{self.data_dir} belongs to a broker on port {port}; use "
                                  f"--port {port} or another --data-dir")
        else:
            controller = self.controller_port or _free_port(exclude=self.port)
            ports_file.write_text(f"{self.port} {controller}\n")
        template = (_kafka_dir() / "server.properties.template").read_text()
        props.write_text(template.format(port=self.port, controller_port=controller, log_dirs=logs))
        if not (logs / "meta.properties").is_file():
            java = _java()
            cp = f"{lib}/*"
            uuid = subprocess.run([java, "-cp", cp, "kafka.tools.StorageTool", "random-uuid"],
                                  capture_output=True, text=True, check=False)
            if uuid.returncode != 0:
                raise BrokerError(f"kafka StorageTool failed: {uuid.stderr[-2000:]}")
            fmt = subprocess.run([java, "-cp", cp, "kafka.tools.StorageTool", "format", "-t",
                                  uuid.stdout.strip(), "-c", str(props), "--standalone"],
                                 capture_output=True, text=True, check=False)
            if fmt.returncode != 0:
                raise BrokerError(f"formatting Kafka storage in {logs} failed: "
                                  f"{(fmt.stdout + fmt.stderr)[-2000:]}")
        return props

    def start(self, wait_s: float = 90.0, progress: Callable[[str], None] = lambda _: None) -> StartResult:
        """Start the broker unless it already runs from this data dir; wait until ready."""
        pid = self._pid()
        if pid is not None:
            wait_ready(self.bootstrap, wait_s)
            return StartResult(self.bootstrap, pid, self.log_path, already_running=True)
        if _port_open(self.port):
            raise BrokerError(f"port {self.port} is already in use by another process; stop it, "
                              "choose --port, or point CXSTREAM_BROKER at that broker")
        lib = ensure_jars(progress)
        props = self._configure(lib)
        java = _java()
        log4j = _kafka_dir() / "log4j2.yaml"
        with self.log_path.open("ab") as log:
            proc = subprocess.Popen(
                [java, "-Xms256m", "-Xmx512m", "-XX:+UseG1GC", f"-Dlog4j2.configurationFile={log4j}",
                 "-cp", f"{lib}/*", "kafka.Kafka", str(props)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.data_dir)
        self.pid_path.write_text(f"{proc.pid}\n")
        try:
            wait_ready(self.bootstrap, wait_s, alive=lambda: proc.poll() is None)
        except BrokerError as exc:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            self.pid_path.unlink(missing_ok=True)
            raise BrokerError(f"{exc}; log {self.log_path}:\n{self._log_tail()}") from None
        return StartResult(self.bootstrap, proc.pid, self.log_path, already_running=False)

    def stop(self, timeout_s: float = 30.0) -> bool:
        """SIGTERM (a clean shutdown), SIGKILL after `timeout_s`; False if nothing ran."""
        pid = self._pid()
        if pid is None:
            self.pid_path.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
        self.pid_path.unlink(missing_ok=True)
        return True

    def status(self) -> BrokerStatus:
        pid = self._pid()
        return BrokerStatus(pid is not None, pid, self.port, self.log_path, self.data_dir)

    def _log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log written)"


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise BrokerError("Java 17+ is needed for the local broker: apt-get install -y openjdk-17-jre-headless")
    return java


def _free_port(exclude: int) -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port != exclude:
            return port
