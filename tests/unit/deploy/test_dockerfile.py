"""Dockerfile, checked without Docker: installed with the project's pins, runs as a non-root
user, and its HEALTHCHECK really works: the command is run here against cxstream's own auth
middleware, on the port CXSTREAM_WEB_PORT names, with and without a required token."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import socket
import sys
from pathlib import Path

import pytest
from aiohttp import web

from cxstream.api import auth

from .promql_names import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in DOCKERFILE.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip()[:-1] + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            logical.append(current)
            current = ""
    return [(i.split(None, 1)[0].upper(), i.split(None, 1)[1].strip()) for i in logical]


def of(kind: str) -> list[str]:
    return [args for ins, args in instructions() if ins == kind]


def healthcheck_command() -> list[str]:
    (args,) = of("HEALTHCHECK")
    options, _, cmd = args.partition(" CMD ")
    assert cmd.startswith("["), "exec form: no shell quoting between Docker and Python"
    command = json.loads(cmd)
    assert command[:2] == ["python", "-c"] and len(command) == 3
    return command


def test_installs_with_the_project_constraints() -> None:
    copied = [word for args in of("COPY") for word in args.split()[:-1]]
    assert "constraints.txt" in copied
    installs = [args for args in of("RUN") if "pip install" in args]
    assert len(installs) == 1, installs
    pip = shlex.split(installs[0].split("&&")[0])
    assert pip[:2] == ["pip", "install"]
    assert pip[pip.index("-c") + 1] == "constraints.txt"
    # The wheel the build stage compiled, with the store the image defaults to (CXSTREAM_STORE).
    assert "$(echo /wheels/cxstream-*.whl)[rocksdb]" in pip


def test_the_image_core_is_compiled_in_a_build_stage() -> None:
    """The slim image has no C compiler: the wheel is built in the full image, and that build
    fails if the wheel lacks the compiled core (setup.py falls back to Python silently)."""
    stages = of("FROM")
    assert stages[0].startswith("python:3.11 AS build") and stages[-1].startswith("python:3.11-slim")
    build = next(args for args in of("RUN") if "pip wheel" in args)
    assert "--wheel-dir /wheels ." in build and "grep -q native__mypyc" in build
    assert "--from=build /wheels /wheels" in of("COPY")
    assert "setup.py" in of("COPY")[0].split()
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (ROOT / "constraints.txt").read_text(), re.M))
    assert {"faust-streaming", "aiokafka", "rocksdict"} <= set(pins)
    # Installing before switching user, and no cache kept in the layer.
    order = [ins for ins, _ in instructions()]
    assert order.index("RUN") < order.index("USER")
    assert "PIP_NO_CACHE_DIR=1" in " ".join(of("ENV"))


def test_runs_as_a_non_root_user() -> None:
    users = of("USER")
    assert users, "no USER: the worker would run as root"
    final = users[-1].split(":")[0]
    assert final not in {"root", "0"}
    created = re.search(r"useradd --uid (\d+)[^&]*?\s(\w+)\s*(?:&&|$)", " ".join(of("RUN")))
    assert created, "the USER must be created in the image"
    assert int(created.group(1)) != 0 and created.group(2) == final
    assert of("FROM")[-1].startswith("python:3.11-slim")


def test_healthcheck_targets_healthz_on_the_configured_port() -> None:
    (args,) = of("HEALTHCHECK")
    assert re.search(r"--timeout=(\d+)s", args) and "--start-period=" in args
    code = healthcheck_command()[2]
    assert "/healthz" in code and "CXSTREAM_WEB_PORT" in code and "'6066'" in code
    assert "CXSTREAM_API_TOKEN_FILE" in code and "'CXSTREAM_API_TOKEN'" in code
    exposed = [int(p.split("/")[0]) for p in " ".join(of("EXPOSE")).split()]
    assert exposed == [6066]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _run_healthcheck(env: dict[str, str]) -> int:
    command = healthcheck_command()
    base = {k: v for k, v in os.environ.items() if not k.startswith("CXSTREAM_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *command[1:], env={**base, **env},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    return await asyncio.wait_for(proc.wait(), 20)


@pytest.mark.parametrize("health_auth", [False, True])
async def test_healthcheck_command_works_with_and_without_a_token(health_auth: bool,
                                                                  tmp_path: Path) -> None:
    token = "s3cret-token"
    status = {"code": 200}

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": status["code"] == 200}, status=status["code"])

    app = web.Application(middlewares=[auth.middleware(token, health_auth=health_auth)])
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    token_file = tmp_path / "api-token"
    token_file.write_text(token + "\n")
    env = {"CXSTREAM_WEB_PORT": str(port)}
    try:
        assert await _run_healthcheck({**env, "CXSTREAM_API_TOKEN_FILE": str(token_file)}) == 0
        assert await _run_healthcheck({**env, "CXSTREAM_API_TOKEN": token}) == 0
        # Without the token: healthy only when /healthz does not require it.
        assert (await _run_healthcheck(env) == 0) is (not health_auth)
        assert (await _run_healthcheck({**env, "CXSTREAM_API_TOKEN": "wrong"}) == 0) is (not health_auth)
        status["code"] = 503
        assert await _run_healthcheck({**env, "CXSTREAM_API_TOKEN": token}) != 0
    finally:
        await runner.cleanup()
    assert await _run_healthcheck(env) != 0  # nothing listening


async def test_healthcheck_uses_the_web_port_not_a_fixed_one() -> None:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        assert await _run_healthcheck({"CXSTREAM_WEB_PORT": str(port)}) == 0
        assert await _run_healthcheck({"CXSTREAM_WEB_PORT": str(_free_port())}) != 0
    finally:
        await runner.cleanup()
