"""Delivery of one notification over one channel: HTTP (webhook, Slack) and SMTP.

Each call makes one attempt and returns (verdict, detail, retry_after); the notifier owns
retries. Redirects are never followed (a 3xx is a failure that says so). Unless a channel sets
`allow_private`, URLs must be https and must not resolve to private, loopback or link-local
addresses: checked before each attempt, and again by the connection's own resolver on the very
addresses it connects to (`PublicOnlyResolver`), so a DNS answer that changes between the
check and the connection (DNS rebinding) cannot reach an internal address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import smtplib
import socket
import time
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from cxstream.core.notification import (
    Channel,
    Verdict,
    email_message,
    parse_retry_after,
    slack_message,
    verdict,
    webhook_headers,
)

Attempt = tuple[Verdict, str, float | None]

PRIVATE_REFUSAL = "URL resolves to a private, loopback or link-local address"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def public_address(addr: str) -> bool:
    """Whether an IP address is globally routable (not private, loopback, link-local, shared,
    reserved or multicast), looking through IPv4-mapped and NAT64 IPv6 forms."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.is_global and not ip.is_multicast


class AddressRefused(OSError):
    """A host name resolved to an address the channel policy forbids."""


class PublicOnlyResolver(AbstractResolver):
    """The connector's resolver for channels without `allow_private`: refuses a host when any
    of its addresses is not public, at connection time (after any DNS change)."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        infos = await self._inner.resolve(host, port, family)
        if not infos or not all(public_address(info["host"]) for info in infos):
            raise AddressRefused(PRIVATE_REFUSAL)
        return infos

    async def close(self) -> None:
        await self._inner.close()


def new_session(*, allow_private: bool) -> aiohttp.ClientSession:
    """The HTTP session for channels with (True) or without (False) `allow_private`."""
    if allow_private:
        return aiohttp.ClientSession()
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=PublicOnlyResolver()))


async def check_url(url: str, allow_private: bool) -> str | None:
    """Why `url` may not be called, or None when it may."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "URL must be http(s) with a host"
    if allow_private:
        return None
    if parts.scheme != "https":
        return "URL must be https (set allow_private = true for a lab receiver)"
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, parts.port or 443,
                                                             type=socket.SOCK_STREAM)
    except socket.gaierror:
        return "host does not resolve"
    if not infos or not all(public_address(str(info[4][0])) for info in infos):
        return PRIVATE_REFUSAL
    return None


async def post_json(session: aiohttp.ClientSession, channel: Channel, body: bytes,
                    headers: dict[str, str], timeout_s: float) -> Attempt:
    assert channel.url is not None
    refused = await check_url(channel.url, channel.allow_private)
    if refused:
        return "fail", refused, None
    try:
        async with session.post(channel.url, data=body, headers=headers, allow_redirects=False,
                                timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            await resp.read()
            if 300 <= resp.status < 400:
                return ("fail", f"HTTP {resp.status}: redirect not followed (configure the "
                        "final URL)", None)
            return verdict(resp.status), f"HTTP {resp.status}", parse_retry_after(resp.headers.get("Retry-After"))
    except asyncio.TimeoutError:
        return "retry", f"no answer within {timeout_s:g}s", None
    except aiohttp.ClientError as exc:
        if isinstance(getattr(exc, "os_error", None), AddressRefused) or isinstance(
                exc.__cause__, AddressRefused):
            return "fail", PRIVATE_REFUSAL, None
        return "retry", f"{type(exc).__name__}", None


async def send_webhook(session: aiohttp.ClientSession, channel: Channel, alert: dict[str, Any],
                       timeout_s: float) -> Attempt:
    body = orjson.dumps(alert)
    headers = webhook_headers(alert["alert_id"], channel.secret, int(time.time()), body)
    return await post_json(session, channel, body, headers, timeout_s)


async def send_slack(session: aiohttp.ClientSession, channel: Channel, alert: dict[str, Any],
                     timeout_s: float) -> Attempt:
    body = orjson.dumps(slack_message(alert))
    return await post_json(session, channel, body, {"Content-Type": "application/json"}, timeout_s)


def _smtp_send(channel: Channel, recipients: list[str], msg: EmailMessage, timeout_s: float) -> Attempt:
    assert channel.host is not None
    try:
        with smtplib.SMTP(channel.host, channel.port, timeout=timeout_s) as smtp:
            if channel.starttls:
                smtp.starttls()
            if channel.username:
                smtp.login(channel.username, channel.password or "")
            smtp.send_message(msg, to_addrs=recipients)
        return "delivered", "SMTP accepted", None
    except smtplib.SMTPResponseException as exc:
        return ("retry" if 400 <= exc.smtp_code < 500 else "fail"), f"SMTP {exc.smtp_code}", None
    except smtplib.SMTPRecipientsRefused:
        return "fail", "SMTP refused every recipient", None
    except (OSError, smtplib.SMTPException) as exc:
        return "retry", f"{type(exc).__name__}", None


async def send_email(channel: Channel, alert: dict[str, Any], timeout_s: float) -> Attempt:
    owner_email = (alert.get("owner") or {}).get("email")
    recipients = list(channel.to) or ([owner_email] if owner_email else [])
    if not recipients:
        return "fail", "no recipient: the owner has no e-mail and the channel sets no `to`", None
    subject, text = email_message(alert)
    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = subject, channel.sender, ", ".join(recipients)
    msg["Message-ID"] = f"<{alert['alert_id']}@cxstream>"  # same id on every delivery
    msg.set_content(text)
    return await asyncio.to_thread(_smtp_send, channel, recipients, msg, timeout_s)
