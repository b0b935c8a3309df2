"""Outbound URL policy of notification channels: redirects are never followed, and a channel
without `allow_private` never connects to a private, loopback or link-local address, whether
the URL names it, its host resolves to it, or its DNS answer changes after the check."""

from __future__ import annotations

import socket
from typing import Any, AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from cxstream.notify import senders
from cxstream.core.notification import Channel

ALERT = {"alert_id": "a-1", "customer_id": "c-1", "kind": "detractor", "score": 2}


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[TestServer, list[str]]]:
    """A local HTTP server: /redirect answers 302 to /target; every hit is recorded."""
    hits: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        hits.append("redirect")
        raise web.HTTPFound("/target")

    async def target(request: web.Request) -> web.Response:
        hits.append("target")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/redirect", redirect)
    app.router.add_post("/target", target)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server, hits
    await server.close()


@pytest.mark.parametrize("addr, public", [
    ("8.8.8.8", True), ("2001:4860:4860::8888", True), ("::ffff:8.8.8.8", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("::1", False), ("fe80::1%eth0", False), ("fd00::1", False), ("::ffff:127.0.0.1", False),
    ("64:ff9b::a00:1", False), ("not-an-ip", False),
])
def test_public_address(addr: str, public: bool) -> None:
    assert senders.public_address(addr) is public


@pytest.mark.parametrize("url, reason", [
    ("https://127.0.0.1/hook", "private, loopback or link-local"),
    ("https://[::1]/hook", "private, loopback or link-local"),
    ("https://169.254.169.254/latest/meta-data", "private, loopback or link-local"),
    ("https://localhost/hook", "private, loopback or link-local"),
    ("http://hooks.example.com/hook", "must be https"),
    ("ftp://hooks.example.com/hook", "http(s)"),
])
async def test_check_url_refuses(url: str, reason: str) -> None:
    assert reason in (await senders.check_url(url, allow_private=False) or "")


async def test_private_address_is_refused_without_a_connection(receiver: Any) -> None:
    server, hits = receiver
    url = str(server.make_url("/target")).replace("http://", "https://")
    async with senders.new_session(allow_private=False) as session:
        outcome, detail, _ = await senders.send_webhook(
            session, Channel("c", "webhook", url=url, secret="s"), ALERT, 5)
    assert (outcome, detail) == ("fail", senders.PRIVATE_REFUSAL)
    assert hits == []


async def test_redirects_are_not_followed(receiver: Any) -> None:
    server, hits = receiver
    channel = Channel("c", "webhook", url=str(server.make_url("/redirect")), secret="s",
                      allow_private=True)
    async with senders.new_session(allow_private=True) as session:
        outcome, detail, _ = await senders.send_webhook(session, channel, ALERT, 5)
    assert outcome == "fail"  # not retried either: the answer will not change
    assert "302" in detail and "redirect not followed" in detail
    assert hits == ["redirect"]


async def test_resolved_addresses_are_checked_when_connecting(receiver: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the pre-check saw a public address, the connection's own resolution
    gets a loopback one. The connector's resolver refuses it; the receiver is never hit."""
    server, hits = receiver

    async def passes(url: str, allow_private: bool) -> None:
        return None  # the first DNS answer was public

    monkeypatch.setattr(senders, "check_url", passes)
    port = server.port
    session = senders.new_session(allow_private=False)
    resolver = session.connector._resolver  # noqa: SLF001

    async def rebound(host: str, port: int = 0, family: Any = socket.AF_INET) -> list[dict[str, Any]]:
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": 0}]

    monkeypatch.setattr(resolver._inner, "resolve", rebound)  # noqa: SLF001
    channel = Channel("c", "webhook", url=f"http://rebind.example.com:{port}/target", secret="s")
    async with session:
        outcome, detail, _ = await senders.send_webhook(session, channel, ALERT, 5)
    assert (outcome, detail) == ("fail", senders.PRIVATE_REFUSAL)
    assert hits == []


async def test_public_answers_pass_the_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    resolver = senders.PublicOnlyResolver()

    async def public(host: str, port: int = 0, family: Any = socket.AF_INET) -> list[dict[str, Any]]:
        return [{"hostname": host, "host": "93.184.215.14", "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": 0}]

    monkeypatch.setattr(resolver._inner, "resolve", public)  # noqa: SLF001
    assert (await resolver.resolve("hooks.example.com", 443))[0]["host"] == "93.184.215.14"
    await resolver.close()


def test_the_readme_verification_snippet_accepts_our_signatures() -> None:
    """The receiver code in docs/concepts/notifications.md, "Webhook signatures", verifies what
    cxstream sends and rejects a tampered body and a replay older than 5 minutes."""
    import re
    import time
    from pathlib import Path

    from cxstream.core.notification import webhook_headers

    docs = Path(__file__).resolve().parents[3] / "docs"
    readme = (docs / "concepts" / "notifications.md").read_text()
    section = readme.split("## Webhook signatures", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    scope: dict[str, Any] = {}
    exec(code, scope)  # noqa: S102 - the documented snippet itself
    verify = scope["verify"]
    body = b'{"alert_id":"a-1"}'
    now = int(time.time())
    headers = webhook_headers("a-1", "whsec", now, body)
    assert verify("whsec", headers, body)
    assert not verify("whsec", headers, body + b" ")
    assert not verify("other", headers, body)
    old = webhook_headers("a-1", "whsec", now - 301, body)
    assert not verify("whsec", old, body)
