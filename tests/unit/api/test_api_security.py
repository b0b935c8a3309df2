"""HTTP API security: bearer-token auth, JSON errors (4xx, 404/405, 500) and no tracebacks.

The worker's real aiohttp application (the Faust app's web server with cxstream's views and
middleware) is served by aiohttp's test server; no broker is needed. A query that must reach
the group is answered by replacing `cxstream.api.routes.gather` in the test only.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from cxstream.api import auth
from cxstream.app import create_app
from cxstream.cli import main
from cxstream.api.queries import Partial
from cxstream.config.settings import Settings, SettingsError

from .localserver import serve

TOKEN = "s3cret-token-\u00e9"  # non-ASCII on purpose: compared as bytes
GOOD = {"Authorization": f"Bearer {TOKEN}"}
PERSONAL = "ana.lopez@example.com said: the agent was rude"
HOUR_MS = 3_600_000  # the span of the default 1h window


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"CXSTREAM_DATA_DIR": str(tmp_path), **env})


@pytest.fixture
async def make_client(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """A test client over a fresh worker app's web server, with these CXSTREAM_* settings."""
    clients: list[TestClient] = []

    async def make(**env: str) -> TestClient:
        app = create_app(settings(tmp_path / f"app{len(clients)}", **env))
        client = TestClient(TestServer(app.web.web_app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for c in clients:
        await c.close()


@pytest.fixture
async def client(make_client: Callable[..., Any]) -> TestClient:
    return await make_client(CXSTREAM_API_TOKEN=TOKEN)


@pytest.fixture
def empty_group(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """`gather` answers at once with no data (as a settled group with no responses would)."""
    calls: list[dict[str, Any]] = []

    async def gather(app: Any, processor: Any, segments: Any, start: int, end: int, **kw: Any) -> Partial:
        calls.append({"segments": segments, **kw})
        return Partial([0, 1, 2, 3], {}, {0: None, 1: None, 2: None, 3: None})

    monkeypatch.setattr("cxstream.api.routes.gather", gather)
    return calls


# -- the token check ------------------------------------------------------------------------
def test_bearer_ok_uses_a_constant_time_comparison(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[bytes, bytes]] = []
    real = auth.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    assert auth.bearer_ok(f"Bearer {TOKEN}", TOKEN)
    assert auth.bearer_ok(f"bearer   {TOKEN} ", TOKEN)
    assert not auth.bearer_ok("Bearer wrong", TOKEN)
    assert not auth.bearer_ok("Bearer \udcff\u00e9", TOKEN)  # anything at all: False, never an error
    assert len(seen) == 4 and all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in seen)
    assert not auth.bearer_ok(None, TOKEN)
    assert not auth.bearer_ok(f"Basic {TOKEN}", TOKEN)
    assert not auth.bearer_ok(TOKEN, TOKEN)


def test_token_from_file_and_its_errors(tmp_path: Path) -> None:
    assert auth.resolve_token(settings(tmp_path)) is None
    assert auth.resolve_token(settings(tmp_path, CXSTREAM_API_TOKEN="abc")) == "abc"
    f = tmp_path / "token"
    f.write_text("from-file\n")
    assert auth.resolve_token(settings(tmp_path, CXSTREAM_API_TOKEN_FILE=str(f))) == "from-file"
    f.write_text("  \n")
    with pytest.raises(SettingsError, match="empty"):
        auth.resolve_token(settings(tmp_path, CXSTREAM_API_TOKEN_FILE=str(f)))
    with pytest.raises(SettingsError, match="cannot be read"):
        auth.resolve_token(settings(tmp_path, CXSTREAM_API_TOKEN_FILE=str(tmp_path / "missing")))
    with pytest.raises(SettingsError, match="not both"):
        auth.resolve_token(settings(tmp_path, CXSTREAM_API_TOKEN="a", CXSTREAM_API_TOKEN_FILE=str(f)))


def test_the_token_is_not_in_the_settings_repr(tmp_path: Path) -> None:
    assert TOKEN not in repr(settings(tmp_path, CXSTREAM_API_TOKEN=TOKEN))


# -- the middleware on the real views ------------------------------------------------------
@pytest.mark.parametrize("path", ["/scores?window=7d", "/scores/plan:pro?window=7d",
                                  "/_cx/partials?partitions=&start=0&end=1", "/no/such/path"])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": f"Basic {TOKEN}"}])
async def test_missing_or_wrong_token_is_401_json(client: TestClient, path: str,
                                                  headers: dict[str, str]) -> None:
    resp = await client.get(path, headers=headers)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    body = await resp.json()
    assert body["error"] == "unauthorized" and TOKEN not in str(body)


async def test_right_token_is_200(client: TestClient, empty_group: list[dict[str, Any]]) -> None:
    resp = await client.get("/scores", params={"window": "7d"}, headers=GOOD)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["segments"] == []
    assert empty_group[-1]["token"] == TOKEN  # peers are asked with the token too
    resp = await client.get("/_cx/partials", params={"partitions": "", "start": "0",
                                                     "end": str(HOUR_MS)}, headers=GOOD)
    assert resp.status == 200
    assert (await resp.json())["counts"] == {}


async def test_health_and_metrics_are_open_by_default(client: TestClient) -> None:
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 503  # not started: not ready, but no 401
    assert (await client.get("/metrics")).status == 200


async def test_metrics_and_health_can_require_the_token(make_client: Callable[..., Any]) -> None:
    c = await make_client(CXSTREAM_API_TOKEN=TOKEN, CXSTREAM_METRICS_AUTH="true",
                          CXSTREAM_HEALTH_AUTH="true")
    for path in ("/metrics", "/healthz", "/readyz"):
        resp = await c.get(path)
        assert resp.status == 401 and (await resp.json())["error"] == "unauthorized"
    assert (await c.get("/metrics", headers=GOOD)).status == 200
    assert (await c.get("/healthz", headers=GOOD)).status == 200


async def test_no_token_configured_means_no_auth(make_client: Callable[..., Any],
                                                 empty_group: list[dict[str, Any]]) -> None:
    c = await make_client()
    assert (await c.get("/scores")).status == 200
    assert empty_group[-1]["token"] is None


@pytest.mark.parametrize("path, params, status, code", [
    ("/scores", {"window": "9x"}, 400, "unknown_window"),
    ("/scores", {"as_of": "yesterday"}, 400, "bad_as_of"),
    ("/scores", {"as_of": "99999-01-01T00:00:00Z"}, 400, "bad_as_of"),
    ("/scores/nocolon", {}, 400, "bad_segment"),
    ("/scores/plan:pro", {"window": "\x00"}, 400, "unknown_window"),
    ("/_cx/partials", {}, 400, "bad_request"),
    ("/_cx/partials", {"partitions": "a,b", "start": "0", "end": "1"}, 400, "bad_request"),
    ("/_cx/partials", {"partitions": "0", "start": "x", "end": "1"}, 400, "bad_request"),
    ("/nothing-here", {}, 404, "not_found"),
    ("/scores/a:b/c", {}, 404, "not_found"),
])
async def test_bad_requests_are_4xx_json(client: TestClient, empty_group: Any, path: str,
                                         params: dict[str, str], status: int, code: str) -> None:
    resp = await client.get(path, params=params, headers=GOOD)
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert body["error"] == code and "Traceback" not in str(body)


async def test_wrong_method_is_405_json(client: TestClient) -> None:
    resp = await client.post("/scores", headers=GOOD)
    assert resp.status == 405 and "GET" in resp.headers["Allow"]
    assert (await resp.json())["error"] == "method_not_allowed"


async def test_unhandled_error_is_500_json_without_details(
        client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Partial:
        raise RuntimeError(f"internal state of {PERSONAL}")

    monkeypatch.setattr("cxstream.api.routes.gather", broken)
    caplog.set_level(logging.DEBUG)
    for path in ("/scores", "/scores/owner:ana.lopez@example.com"):
        resp = await client.get(path, headers=GOOD)
        assert resp.status == 500
        body = await resp.json()
        assert body["error"] == "internal" and set(body) == {"error", "message"}
        assert "RuntimeError" not in body["message"] and PERSONAL not in str(body)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name == "cxstream.api.auth"]
    assert len(errors) == 2
    for record in errors:
        text = record.getMessage()
        assert "RuntimeError" in text and "/scores" in text
        assert "ana.lopez" not in text and "example.com" not in text and "rude" not in text
        assert record.exc_info is None  # the message (and so the data) only at DEBUG


def test_middleware_alone_turns_any_exception_into_json() -> None:
    async def go() -> None:
        app = web.Application(middlewares=[auth.middleware(None)])

        async def boom(request: web.Request) -> web.Response:
            raise KeyError(PERSONAL)

        app.router.add_get("/boom", boom)
        async with TestClient(TestServer(app)) as c:
            resp = await c.get("/boom")
            assert resp.status == 500 and (await resp.json())["error"] == "internal"
            assert PERSONAL not in await resp.text()

    asyncio.run(go())


# -- the CLI sends the token ----------------------------------------------------------------
def test_scores_cli_sends_the_token(tmp_path: Path) -> None:
    seen: list[str | None] = []

    async def scores(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        if not auth.bearer_ok(request.headers.get("Authorization"), "cli-token"):
            return web.json_response({"error": "unauthorized", "message": "no"}, status=401)
        return web.json_response({"window": "7d", "as_of": "2026-01-01T00:00:00Z", "segments": []})

    url, stop = serve({"/scores": scores})
    try:
        runner = CliRunner()
        ok = runner.invoke(main, ["scores", "--url", url, "--json"],
                           env={"CXSTREAM_API_TOKEN": "cli-token"})
        assert ok.exit_code == 0, ok.output
        token_file = tmp_path / "t"
        token_file.write_text("cli-token\n")
        ok = runner.invoke(main, ["scores", "--url", url], env={"CXSTREAM_API_TOKEN_FILE": str(token_file)})
        assert ok.exit_code == 0, ok.output
        denied = runner.invoke(main, ["scores", "--url", url], env={"CXSTREAM_API_TOKEN": ""})
        assert denied.exit_code == 1 and "CXSTREAM_API_TOKEN" in denied.output
        assert seen == ["Bearer cli-token", "Bearer cli-token", None]
    finally:
        stop()


# -- blank tokens, the peer token and the peer endpoint's range ------------------------------
@pytest.mark.parametrize("env", [{"CXSTREAM_API_TOKEN": "   "}, {"CXSTREAM_PEER_TOKEN": "\t \n"}])
def test_a_blank_token_is_refused_at_start(tmp_path: Path, env: dict[str, str]) -> None:
    """A token of spaces would turn authentication off unnoticed: the worker does not start."""
    with pytest.raises(SettingsError, match="is blank"):
        create_app(settings(tmp_path, **env))


def test_the_peer_token_defaults_to_the_api_token(tmp_path: Path) -> None:
    assert auth.resolve_peer_token(settings(tmp_path)) is None
    assert auth.resolve_peer_token(settings(tmp_path, CXSTREAM_API_TOKEN="api")) == "api"
    both = settings(tmp_path, CXSTREAM_API_TOKEN="api", CXSTREAM_PEER_TOKEN="peer")
    assert auth.resolve_peer_token(both) == "peer" and auth.resolve_token(both) == "api"
    f = tmp_path / "peer"
    f.write_text("from-file\n")
    assert auth.resolve_peer_token(settings(tmp_path, CXSTREAM_PEER_TOKEN_FILE=str(f))) == "from-file"
    with pytest.raises(SettingsError, match="not both"):
        auth.resolve_peer_token(settings(tmp_path, CXSTREAM_PEER_TOKEN="a",
                                         CXSTREAM_PEER_TOKEN_FILE=str(f)))


async def test_the_peer_endpoint_is_never_open(make_client: Callable[..., Any]) -> None:
    c = await make_client()  # no token at all: the API is open, the peer endpoint is not
    resp = await c.get("/_cx/partials", params={"partitions": "0", "start": "0", "end": str(HOUR_MS)})
    assert resp.status == 403 and (await resp.json())["error"] == "peer_token_required"
    assert (await c.get("/healthz")).status == 200


async def test_the_peer_endpoint_takes_the_peer_token_only(make_client: Callable[..., Any],
                                                           empty_group: list[dict[str, Any]]) -> None:
    c = await make_client(CXSTREAM_API_TOKEN=TOKEN, CXSTREAM_PEER_TOKEN="peer-secret")
    params = {"partitions": "", "start": "0", "end": str(HOUR_MS)}
    assert (await c.get("/_cx/partials", params=params, headers=GOOD)).status == 401
    peer = {"Authorization": "Bearer peer-secret"}
    assert (await c.get("/_cx/partials", params=params, headers=peer)).status == 200
    assert (await c.get("/scores", headers=peer)).status == 401  # the API keeps its own token
    assert (await c.get("/scores", headers=GOOD)).status == 200
    assert empty_group[-1]["token"] == "peer-secret"  # peers are asked with the peer token


@pytest.mark.parametrize("params", [
    {"partitions": "0", "start": "0", "end": str(10**6 * 86_400_000)},  # 10^6 days
    {"partitions": "0", "start": str(2**62 - HOUR_MS), "end": str(2**62)},  # past year 9999
    {"partitions": "0", "start": "0", "end": str(HOUR_MS + 1)},  # no configured window
    {"partitions": "0", "start": str(HOUR_MS), "end": "0"},
    {"partitions": "4", "start": "0", "end": str(HOUR_MS)},  # 4 partitions: 0..3
    {"partitions": "-1", "start": "0", "end": str(HOUR_MS)},
])
async def test_the_peer_endpoint_answers_only_ranges_a_query_asks(
        client: TestClient, params: dict[str, str]) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    resp = await client.get("/_cx/partials", params=params, headers=GOOD)
    assert resp.status == 400 and (await resp.json())["error"] == "bad_request"
    assert loop.time() - began < 1.0  # refused before any work in proportion to the range


async def test_every_configured_window_span_is_answered(client: TestClient) -> None:
    for ms in (HOUR_MS, 24 * HOUR_MS, 7 * 24 * HOUR_MS, 30 * 24 * HOUR_MS):
        resp = await client.get("/_cx/partials", headers=GOOD,
                                params={"partitions": "", "start": "0", "end": str(ms)})
        assert resp.status == 200, (ms, await resp.text())
