"""A local single-node Kafka (KRaft) for development, demos and tests — no Docker needed.

Why this exists: cxstream's integration tests and demo need a *real* broker (Faust's and
aiokafka's group, commit and changelog behaviour cannot be mocked faithfully), and the machines
it runs on may have no Docker. Java 17 and Maven are enough: the jars come from Maven Central
through ``deploy/kafka/pom.xml`` (resolved once into the git-ignored ``deploy/kafka/lib/``),
storage is formatted on first start, and the broker runs detached with its log in the data
dir, so it outlives the command that started it. Everything listens on 127.0.0.1 only.

This module has no CLI and prints nothing by itself: callers pass a ``progress`` callback and
turn :class:`BrokerError` (whose message always says what to do) into output.

It manages the broker process (`LocalBroker`: configure, format, start, status, stop); the
jars come from :mod:`cxstream.tools.broker_jars`, readiness is probed by
:mod:`cxstream.tools.broker_ready` and the error is :mod:`cxstream.tools.broker_errors`'s.
Callers import what they need of those from here (`__all__`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cxstream.tools.broker_errors import BrokerError
from cxstream.tools.broker_jars import Progress, _file_lock, ensure_jars, kafka_dir
from cxstream.tools.broker_ready import _NotReady, _tcp_open, wait_ready

#: What callers use of the local broker, wherever it is defined (BrokerError, ensure_jars and
#: wait_ready are also what `LocalBroker` itself uses).
__all__ = ["BrokerError", "BrokerStatus", "LocalBroker", "StartResult", "ensure_jars", "wait_ready"]

_LOG_ROTATE_BYTES = 20 * 1024 * 1024


def _silent(_: str) -> None:
    """Default progress callback: library calls print nothing unless asked to."""


@dataclass(frozen=True, slots=True)
class StartResult:
    """What :meth:`LocalBroker.start` did, for the caller to report."""

    bootstrap: str  #: ``127.0.0.1:PORT``, ready for clients
    pid: int
    log_path: Path
    already_running: bool  #: True when a broker from this data dir was already answering
    elapsed_s: float = 0.0  #: call to ready, Maven, formatting and JVM start included


@dataclass(frozen=True, slots=True)
class BrokerStatus:
    """A cheap look at the local broker: process state only, no network round trip."""

    running: bool
    pid: int | None
    port: int
    log_path: Path
    data_dir: Path

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


def _port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True if Kafka could not bind ``host:port``: something listens on it or holds it bound.
    SO_REUSEADDR as Kafka sets it, so sockets in TIME_WAIT from a previous broker do not count."""
    if _tcp_open(host, port, 0.5):
        return True
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) counts as dead
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _java() -> str:
    """The java binary ($JAVA_HOME first), checked to be 17+ because Kafka 4 needs it."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").is_file() \
        else shutil.which("java")
    if java is None:
        raise BrokerError("Java 17+ is needed for the local broker: "
                          "apt-get install -y openjdk-17-jre-headless")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if m:
        major = int(m.group(2) or 0) if m.group(1) == "1" else int(m.group(1))
        if major < 17:
            raise BrokerError(f"{java} is Java {major}; Kafka 4 needs Java 17+: "
                              "apt-get install -y openjdk-17-jre-headless (or set JAVA_HOME)")
    return java


# -- the broker ------------------------------------------------------------------------------------
@dataclass
class LocalBroker:
    """One local broker, identified by its data dir (config, storage, pid file, log).

    ``controller_port`` defaults to ``port + 1`` and both ports are stored in the data dir on
    first start: the KRaft quorum records the controller's endpoint when storage is formatted,
    so later starts must reuse it.

    Optional hooks, empty by default (the broker is then exactly the template's): ``listeners``
    adds listeners on 127.0.0.1, named by their security protocol (``{"SASL_SSL": 9094}``);
    ``properties`` sets or overrides server properties (TLS, SASL, authorizer...);
    ``format_args`` are extra ``kafka-storage format`` arguments, applied on first start only
    (e.g. ``["--add-scram", "SCRAM-SHA-512=[name=u,password=p]"]``).
    """

    port: int = 9092
    data_dir: Path = field(default_factory=lambda: Path(".cxstream/kafka"))
    controller_port: int | None = None
    listeners: Mapping[str, int] = field(default_factory=dict)
    properties: Mapping[str, str] = field(default_factory=dict, repr=False)
    format_args: Sequence[str] = field(default_factory=tuple, repr=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False,
                                                   compare=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser().resolve()

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def props_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _stored_ports(self) -> tuple[int, int] | None:
        try:
            port, controller = (int(x) for x in (self.data_dir / "ports").read_text().split())
        except (OSError, ValueError):
            return None
        return port, controller

    def _pid(self) -> int | None:
        """The pid from the pid file if that process is alive *and* is this data dir's broker —
        after a reboot the pid may belong to anything."""
        try:
            pid = int(self.pid_path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if not _alive(pid):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return pid  # no /proc (not Linux): trust the live pid
        if b"kafka.Kafka" in cmdline and str(self.props_path).encode() in cmdline:
            return pid
        return None

    def _controller_port(self) -> int:
        """The controller port for this data dir: the stored one (the caller's must match) or,
        before the first start, the requested one / ``port + 1``."""
        stored = self._stored_ports()
        if stored is None:
            controller = self.controller_port or self.port + 1
            if controller == self.port:
                raise BrokerError(f"the controller port must differ from the broker port "
                                  f"{self.port}")
            return controller
        port, controller = stored
        if port != self.port:
            raise BrokerError(f"{self.data_dir} belongs to a broker on port {port}; use "
                              f"--port {port} or another --data-dir")
        if self.controller_port is not None and self.controller_port != controller:
            raise BrokerError(f"{self.data_dir} was formatted with controller port {controller}; "
                              f"it cannot change to {self.controller_port} (use another data dir)")
        return controller

    def _configure(self, lib: Path, controller: int, java: str, progress: Progress) -> None:
        """Write server.properties from the template (every start, so template edits apply) and
        format storage on first start."""
        logs = self.data_dir / "data"
        (self.data_dir / "ports").write_text(f"{self.port} {controller}\n")
        template = (kafka_dir() / "server.properties.template").read_text()
        self.props_path.write_text(self._customise(template.format(
            port=self.port, controller_port=controller, log_dirs=logs)))
        if (logs / "meta.properties").is_file():
            return
        progress(f"formatting Kafka storage in {logs}")
        cp = f"{lib}/*"
        uuid = subprocess.run([java, "-cp", cp, "kafka.tools.StorageTool", "random-uuid"],
                              capture_output=True, text=True, check=False)
        cluster_id = uuid.stdout.strip().splitlines()[-1] if uuid.stdout.strip() else ""
        if uuid.returncode != 0 or not cluster_id:
            raise BrokerError(f"Kafka's StorageTool random-uuid failed (exit {uuid.returncode}):\n"
                              f"{(uuid.stdout + uuid.stderr)[-3000:]}")
        fmt = subprocess.run([java, "-cp", cp, "kafka.tools.StorageTool", "format", "-t",
                              cluster_id, "-c", str(self.props_path), "--standalone",
                              *self.format_args],
                             capture_output=True, text=True, check=False)
        if fmt.returncode != 0:
            raise BrokerError(f"formatting Kafka storage in {logs} failed (exit {fmt.returncode}); "
                              f"delete {self.data_dir} to start afresh:\n"
                              f"{(fmt.stdout + fmt.stderr)[-3000:]}")

    def _customise(self, text: str) -> str:
        """Apply ``listeners`` and ``properties`` to the rendered template (no-op when empty)."""
        extra: dict[str, str] = {}
        if self.listeners:
            current = dict(line.split("=", 1) for line in text.splitlines()
                           if "=" in line and not line.lstrip().startswith("#"))
            urls = ",".join(f"{name}://127.0.0.1:{port}" for name, port in self.listeners.items())
            names = ",".join(f"{name}:{name}" for name in self.listeners)
            extra = {"listeners": f"{current['listeners']},{urls}",
                     "advertised.listeners": f"{current['advertised.listeners']},{urls}",
                     "listener.security.protocol.map":
                         f"{current['listener.security.protocol.map']},{names}"}
        extra.update(self.properties)
        if not extra:
            return text
        lines = [line for line in text.splitlines()
                 if line.split("=", 1)[0].strip() not in extra or line.lstrip().startswith("#")]
        lines.append("# -- set by the caller (LocalBroker listeners/properties)")
        lines.extend(f"{key}={value}" for key, value in extra.items())
        return "\n".join(lines) + "\n"

    def start(self, wait_s: float = 60.0, progress: Progress = _silent) -> StartResult:
        """Start the broker unless one from this data dir already runs; return once it is ready.

        Idempotent so that the CLI, the demo and test sessions can all just call it. Raises
        :class:`BrokerError` if Java or the jars are missing, a port is taken by something else,
        or the broker is not ready within ``wait_s`` (the JVM is then killed and the error
        carries the log's last lines).
        """
        t0 = time.monotonic()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.data_dir / ".start.lock"):
            controller = self._controller_port()
            pid = self._pid()
            if pid is not None:
                return self._already_running(pid, wait_s, t0)
            self.pid_path.unlink(missing_ok=True)
            for what, port in (("port", self.port), ("controller port", controller),
                               *((f"{name} port", p) for name, p in self.listeners.items())):
                if _port_in_use(port):
                    raise BrokerError(
                        f"{what} {port} is already in use by another process (not a broker from "
                        f"{self.data_dir}); stop it, choose another --port/--data-dir, or point "
                        "CXSTREAM_BROKER at that broker if it is one")
            java = _java()
            lib = ensure_jars(progress)
            self._configure(lib, controller, java, progress)
            return self._launch(lib, java, wait_s, progress, t0)

    def _already_running(self, pid: int, wait_s: float, t0: float) -> StartResult:
        try:
            wait_ready(self.bootstrap, wait_s, alive=lambda: _alive(pid))
        except BrokerError as exc:
            why = exc.reason if isinstance(exc, _NotReady) else str(exc)
            raise BrokerError(f"the broker from {self.data_dir} (pid {pid}) runs but was not ready "
                              f"within {wait_s:g}s ({why}); stop it (`cxstream broker stop`) and "
                              f"start again. Log {self.log_path}, last lines:\n"
                              f"{self._log_tail()}") from None
        return StartResult(self.bootstrap, pid, self.log_path, already_running=True,
                           elapsed_s=time.monotonic() - t0)

    def _launch(self, lib: Path, java: str, wait_s: float, progress: Progress,
                t0: float) -> StartResult:
        if self.log_path.is_file() and self.log_path.stat().st_size > _LOG_ROTATE_BYTES:
            self.log_path.replace(self.log_path.with_suffix(".log.1"))
        with self.log_path.open("ab") as log:
            log.write(f"=== cxstream: starting Kafka on {self.bootstrap} at "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S')} ===\n".encode())
            log.flush()
            offset = log.tell()
            self._proc = subprocess.Popen(
                [java, "-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError",
                 "-Djava.awt.headless=true",
                 f"-Dlog4j2.configurationFile={kafka_dir() / 'log4j2.yaml'}",
                 "-cp", f"{lib}/*", "kafka.Kafka", str(self.props_path)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.data_dir)
        proc = self._proc
        self.pid_path.write_text(f"{proc.pid}\n")
        progress(f"started Kafka (pid {proc.pid}); waiting until it is ready (log {self.log_path})")
        try:
            wait_ready(self.bootstrap, max(wait_s - (time.monotonic() - t0), 1.0),
                       alive=lambda: proc.poll() is None)
        except BrokerError as exc:
            code = proc.poll()
            if code is None:
                proc.kill()
                proc.wait()
            self.pid_path.unlink(missing_ok=True)
            if code is not None:
                why = f"the broker exited with code {code} during start-up"
            else:
                reason = exc.reason if isinstance(exc, _NotReady) else str(exc)
                why = (f"the broker was not ready within {wait_s:g}s ({reason}) and was killed; "
                       "a slow machine may need a longer wait")
            raise BrokerError(f"{why}; log {self.log_path}, last lines:\n"
                              f"{self._log_tail(since=offset)}") from None
        return StartResult(self.bootstrap, proc.pid, self.log_path, already_running=False,
                           elapsed_s=time.monotonic() - t0)

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop this data dir's broker: SIGTERM (a clean shutdown that flushes the logs), SIGKILL
        after ``timeout_s``. Returns False when nothing was running; removes the pid file."""
        pid = self._pid()
        if pid is None:
            self.pid_path.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while self._reap(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self._reap(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while self._reap(pid):
                time.sleep(0.05)
        self.pid_path.unlink(missing_ok=True)
        return True

    def _reap(self, pid: int) -> bool:
        """True while ``pid`` runs; reaps it if this process started it (no zombie left)."""
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None
        return _alive(pid)

    def status(self) -> BrokerStatus:
        """Whether this data dir's broker process runs (no network call; see :func:`wait_ready`)."""
        pid = self._pid()
        stored = self._stored_ports()
        return BrokerStatus(pid is not None, pid, stored[0] if stored else self.port,
                            self.log_path, self.data_dir)

    def _log_tail(self, lines: int = 40, since: int = 0) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(since)
                text = f.read().decode(errors="replace")
        except OSError:
            return "(no log written)"
        return "\n".join(text.splitlines()[-lines:]) or "(the log is empty)"
