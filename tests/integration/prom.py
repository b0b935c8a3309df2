"""A real Prometheus server for integration tests (Debian's `prometheus` binary).

Each server listens on 127.0.0.1 on a free port (never 9090, so a system Prometheus can't
collide), keeps its TSDB in the test's temporary directory and scrapes the given targets
every second. A missing binary is a test failure that says how to install it, never a skip.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from .harness import free_port

INSTALL_HINT = ("the `prometheus` and `promtool` binaries are needed by the metrics tests; "
                "install them with `make system-deps` (Debian package `prometheus`)")


def require_binary(name: str) -> str:
    """Path of `name` (prometheus or promtool), or fail the test with the install hint."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` not found on PATH: {INSTALL_HINT}", pytrace=False)
    return path


@dataclass
class PrometheusServer:
    """One `prometheus` process scraping `targets` (host:port) at `metrics_path`."""

    data_dir: Path
    targets: list[str]
    scrape_interval: str = "1s"
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "prometheus.log"

    def config(self) -> str:
        targets = ", ".join(f'"{t}"' for t in self.targets)
        return (
            "global:\n"
            f"  scrape_interval: {self.scrape_interval}\n"
            f"  scrape_timeout: {self.scrape_interval}\n"
            f"  evaluation_interval: {self.scrape_interval}\n"
            "scrape_configs:\n"
            "  - job_name: cxstream\n"
            "    metrics_path: /metrics\n"
            "    static_configs:\n"
            f"      - targets: [{targets}]\n"
        )

    def start(self) -> None:
        binary = require_binary("prometheus")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cfg = self.data_dir / "prometheus.yml"
        cfg.write_text(self.config())
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={cfg}", f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1d"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise AssertionError(
                        f"prometheus exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    async with s.get(f"{self.url}/-/ready") as r:
                        if r.status == 200:
                            return
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError(f"prometheus not ready within {timeout_s}s:\n{self.log_tail()}")

    async def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query (now): the vector's samples as {"metric": {...}, "value": float}."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
            async with s.get(f"{self.url}/api/v1/query", params={"query": promql}) as r:
                body = await r.json()
        assert body.get("status") == "success", body
        assert body["data"]["resultType"] == "vector", body
        return [{"metric": item["metric"], "value": float(item["value"][1])}
                for item in body["data"]["result"]]

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
