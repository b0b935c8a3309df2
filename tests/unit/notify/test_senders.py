"""Outbound URL policy of notification channels: redirects are never followed, and a channel
without `allow_private` never connects to a private, loopback or link-local address, whether
the URL names it, its host resolves to it, or its DNS answer changes after the check."""

from __future__ import annotations

import socket
from typing import Any, AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

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
    # IPv6 forms that embed a private IPv4 address, or ranges Python calls global:
    ("2002:7f00::1", False), ("2002:7f00:1::", False), ("2002:a00:1::1", False),  # 6to4
    ("::127.0.0.1", False), ("::10.0.0.1", False),  # IPv4-compatible ::/96
    ("64:ff9b:1::a00:1", False), ("64:ff9b:1::808:808", False),  # local-use NAT64
    ("fec0::1", False), ("feff::1", False),  # deprecated site-local
    ("::ffff:0:7f00:1", False), ("::ffff:0:a9fe:a9fe", False),  # IPv4-translated
    # ... while public addresses, in any of those forms, still pass:
    ("2002:808:808::1", True), ("::ffff:0:808:808", True), ("64:ff9b::808:808", True),
    ("2606:4700:4700::1111", True), ("1.1.1.1", True),
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
        outcome, detail, _, reason = await senders.send_webhook(
            session, Channel("c", "webhook", url=url, secret="s"), ALERT, 5)
    assert (outcome, detail, reason) == ("fail", senders.PRIVATE_REFUSAL, "refused")
    assert hits == []


async def test_redirects_are_not_followed(receiver: Any) -> None:
    server, hits = receiver
    channel = Channel("c", "webhook", url=str(server.make_url("/redirect")), secret="s",
                      allow_private=True)
    async with senders.new_session(allow_private=True) as session:
        outcome, detail, _, reason = await senders.send_webhook(session, channel, ALERT, 5)
    assert outcome == "fail"  # not retried either: the answer will not change
    assert "302" in detail and "redirect not followed" in detail and reason == "http_error"
    assert hits == ["redirect"]


async def test_resolved_addresses_are_checked_when_connecting(
        receiver: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the pre-check saw a public address, the connection's own resolution
    gets a loopback one. The connector's resolver refuses it; the receiver is never hit."""
    server, hits = receiver

    async def passes(url: str, allow_private: bool) -> None:
        return None  # the first DNS answer was public

    monkeypatch.setattr(senders, "check_url", passes)
    port = server.port
    session = senders.new_session(allow_private=False)
    resolver = session.connector._resolver  # noqa: SLF001

    async def rebound(host: str, port: int = 0,
                      family: Any = socket.AF_INET) -> list[dict[str, Any]]:
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": 0}]

    monkeypatch.setattr(resolver._inner, "resolve", rebound)  # noqa: SLF001
    channel = Channel("c", "webhook", url=f"http://rebind.example.com:{port}/target", secret="s")
    async with session:
        outcome, detail, _, reason = await senders.send_webhook(session, channel, ALERT, 5)
    assert (outcome, detail, reason) == ("fail", senders.PRIVATE_REFUSAL, "refused")
    assert hits == []


async def test_public_answers_pass_the_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    resolver = senders.PublicOnlyResolver()

    async def public(host: str, port: int = 0,
                     family: Any = socket.AF_INET) -> list[dict[str, Any]]:
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
    # A Standard Webhooks secret: the snippet decodes the key as cxstream does.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    headers = webhook_headers("a-1", secret, now, body)
    assert verify(secret, headers, body) and not verify("whsec_" + "B" * 32, headers, body)


# -- IPv6 forms of IPv4 addresses: judged by the embedded address (oracle: the IPv4 verdict) ---
@settings(max_examples=300, deadline=None)
@given(v4=st.integers(min_value=0, max_value=2**32 - 1))
def test_embedded_ipv4_addresses_are_judged_as_the_ipv4_address(v4: int) -> None:
    import ipaddress

    plain = ipaddress.IPv4Address(v4)
    expected = plain.is_global and not plain.is_multicast
    assert senders.public_address(str(plain)) is expected
    forms = [(0xFFFF << 32) | v4,            # ::ffff:a.b.c.d   IPv4-mapped
             (0xFFFF << 48) | v4,            # ::ffff:0:a.b.c.d IPv4-translated
             v4,                             # ::a.b.c.d        IPv4-compatible
             (0x64FF9B << 96) | v4,          # 64:ff9b::a.b.c.d NAT64
             (0x2002 << 112) | (v4 << 80)]   # 2002:aabb:ccdd:: 6to4
    for form in forms:
        addr = str(ipaddress.IPv6Address(form))
        assert senders.public_address(addr) is expected, addr


@settings(max_examples=200, deadline=None)
@given(net=st.sampled_from(["64:ff9b:1::/48", "fec0::/10"]), low=st.integers(0, 2**80 - 1))
def test_local_nat64_and_site_local_are_always_refused(net: str, low: int) -> None:
    import ipaddress

    network = ipaddress.IPv6Network(net)
    addr = network[low % network.num_addresses]
    assert senders.public_address(str(addr)) is False


# -- Retry-After from a real receiver ------------------------------------------------------------
@pytest.mark.parametrize("header, expected", [("nan", None), ("inf", None), ("-5", 0.0),
                                              ("86400", 300.0), ("3", 3.0)])
async def test_retry_after_of_a_receiver_is_clamped(header: str, expected: float | None) -> None:
    async def busy(request: web.Request) -> web.Response:
        return web.Response(status=503, headers={"Retry-After": header})

    app = web.Application()
    app.router.add_post("/busy", busy)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    channel = Channel("c", "webhook", url=str(server.make_url("/busy")), secret="s",
                      allow_private=True)
    try:
        async with senders.new_session(allow_private=True) as session:
            attempt = await senders.send_webhook(session, channel, ALERT, 5)
    finally:
        await server.close()
    assert attempt == ("retry", "HTTP 503", expected, "http_error")


# -- Standard Webhooks, verified by the reference library on a real receiver ---------------------
@pytest.mark.parametrize("secret, receiver_key", [
    ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    ("a plain secret", b"a plain secret"),  # earlier scheme: the receiver passes the bytes
])
async def test_webhooks_verify_with_the_standardwebhooks_library(
        secret: str, receiver_key: str | bytes) -> None:
    from standardwebhooks import Webhook, WebhookVerificationError

    verified: list[Any] = []
    rejected: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            verified.append(Webhook(receiver_key).verify(body, dict(request.headers)))
        except WebhookVerificationError as exc:
            rejected.append(str(exc))
            return web.Response(status=401)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("/hook"))
    try:
        async with senders.new_session(allow_private=True) as session:
            good = await senders.send_webhook(
                session, Channel("c", "webhook", url=url, secret=secret, allow_private=True),
                ALERT, 5)
            wrong = await senders.send_webhook(
                session, Channel("c", "webhook", url=url, secret="whsec_" + "B" * 32,
                                 allow_private=True), ALERT, 5)
    finally:
        await server.close()
    assert good.verdict == "delivered" and verified == [ALERT]
    assert wrong == ("fail", "HTTP 401", None, "http_error") and rejected


def test_the_whsec_prefix_is_what_the_reference_library_decodes() -> None:
    """A whsec_ secret used as raw text (the old scheme) does not verify with the reference
    library; decoded, it does (the issue's report)."""
    import base64
    import hashlib
    import hmac
    import time

    from standardwebhooks import Webhook, WebhookVerificationError

    from cxstream.core.notification import webhook_headers

    secret, body, now = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", b'{"a":1}', int(time.time())
    Webhook(secret).verify(body, webhook_headers("a-1", secret, now, body))
    raw = hmac.new(secret.encode(), f"a-1.{now}.".encode() + body, hashlib.sha256).digest()
    old = {**webhook_headers("a-1", secret, now, body),
           "webhook-signature": "v1," + base64.b64encode(raw).decode()}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, old)


# -- e-mail: header text and recipients from the alert never raise -------------------------------
MAIL = Channel("mail", "email", host="127.0.0.1", port=1, sender="cx@example.com")
BREAKS = ["\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\x00"]


@pytest.mark.parametrize("brk", BREAKS)
def test_email_headers_never_raise_on_line_breaks_in_the_alert(brk: str) -> None:
    alert = {**ALERT, "customer_id": f"c{brk}Bcc: victim@example.com", "score": f"2{brk}X: y",
             "comment": f"hello{brk}world", "occurred_at": "2026-01-01T00:00:00Z"}
    msg = senders.build_email(MAIL, alert, ["owner@example.com"])
    raw = msg.as_bytes()
    from email import message_from_bytes
    from email.policy import default

    parsed = message_from_bytes(raw, policy=default)
    assert "victim" not in (parsed["Bcc"] or "") and parsed["X"] is None
    assert parsed["To"] == "owner@example.com"
    assert str(parsed["Subject"]).strip().startswith("[cxstream]")
    assert brk not in str(parsed["Subject"])


@settings(max_examples=300, deadline=None)
@given(cid=st.text(min_size=1, max_size=300), score=st.text(max_size=20),
       comment=st.text(max_size=500), alert_id=st.text(
           alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1,
           max_size=128))
def test_building_any_email_never_raises(cid: str, score: str, comment: str,
                                         alert_id: str) -> None:
    """Whatever text an alert holds, the e-mail builds, serialises, and has one-line headers."""
    alert = {**ALERT, "customer_id": cid, "score": score, "comment": comment,
             "alert_id": alert_id, "occurred_at": "2026-01-01T00:00:00Z"}
    msg = senders.build_email(MAIL, alert, ["owner@example.com"])
    msg.as_bytes()
    for name in ("Subject", "To", "From", "Message-ID"):
        value = str(msg[name])
        assert value.splitlines() == [value], (name, value)


@pytest.mark.parametrize("address", ["ana\n@example.com", "ana@example.com\x85", "a\u2028@b.co",
                                     "ana@example.com\r\nBcc: x@y.z", "Ana <ana@example.com>",
                                     "ana", "ana@@example.com", 7])
async def test_a_bad_owner_address_fails_the_delivery_without_a_connection(address: Any) -> None:
    """Port 1 refuses connections: a 'connection' reason would show an attempt was made."""
    alert = {**ALERT, "owner": {"email": address}, "occurred_at": "2026-01-01T00:00:00Z"}
    attempt = await senders.send_email(MAIL, alert, 5)
    assert (attempt.verdict, attempt.reason) == ("fail", "bad_alert")
    assert "plain address" in attempt.detail or "no recipient" in attempt.detail


async def test_hostile_alerts_are_delivered_over_real_smtp() -> None:
    from email import message_from_bytes
    from email.policy import default

    from aiosmtpd.controller import Controller

    got: list[Any] = []

    class Box:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            got.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=default)))
            return "250 OK"

    import socket as _socket

    with _socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(Box(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        channel = Channel("mail", "email", host="127.0.0.1", port=port, sender="cx@example.com")
        for brk in ("\n", "\x85", "\u2028"):
            alert = {**ALERT, "customer_id": f"c{brk}1", "comment": f"x{brk}y",
                     "owner": {"email": "owner@example.com"},
                     "occurred_at": "2026-01-01T00:00:00Z"}
            attempt = await senders.send_email(channel, alert, 10)
            assert attempt.verdict == "delivered", attempt
    finally:
        controller.stop()
    assert len(got) == 3
    for rcpt, msg in got:
        assert rcpt == ["owner@example.com"] and msg["Subject"].startswith("[cxstream] Customer c")
        assert msg["Message-ID"] == "<a-1@cxstream>"


TARGET = {"alert_id": "t-1", "kind": "below_target", "segment_key": "region:br",
          "segment": {"region": "br"}, "program": "rnps", "metric": "nps", "window": "7d",
          "window_start": "2026-12-01T10:00:00Z", "window_end": "2026-12-08T10:00:00Z",
          "score": 41.5, "target": 50, "responses": 212, "margin_of_error": 9.8,
          "detected_at": "2026-12-08T11:05:02Z", "schema_version": 1}


async def test_a_target_alert_is_mailed_to_the_channels_to_only() -> None:
    """Port 1 refuses connections: a 'connection' reason would show an attempt was made."""
    attempt = await senders.send_email(MAIL, {**TARGET, "owner": {"email": "a@example.com"}}, 5)
    assert (attempt.verdict, attempt.reason) == ("fail", "bad_alert")
    assert "target alert goes to the channel's `to` only" in attempt.detail
    team = Channel("mail", "email", host="127.0.0.1", port=1, sender="cx@example.com",
                   to=("team@example.com",))
    msg = senders.build_email(team, TARGET, list(team.to))
    assert msg["Subject"] == ("[cxstream] rnps below target in region:br: NPS 41.5 (target 50) "
                              "over 7d")
    assert msg["To"] == "team@example.com" and msg["Message-ID"] == "<t-1@cxstream>"
    assert "Responses: 212" in msg.get_content()
    attempt = await senders.send_email(team, TARGET, 5)
    assert attempt.reason == "connection"  # it did try, to `to`
