"""Delivery of one notification over one channel: HTTP (webhook, Slack) and SMTP.

Each call makes one attempt and returns an `Attempt` (verdict, detail, retry_after, reason);
the notifier owns retries and the attempt's overall time limit. An alert that cannot be
rendered or addressed as it is fails the attempt (`bad_alert`) instead of raising.
Redirects are never followed (a 3xx is a failure that says so). Unless a channel sets
`allow_private`, URLs must be https and must not resolve to private, loopback or link-local
addresses: checked before each attempt, and again by the connection's own resolver on the very
addresses it connects to (`PublicOnlyResolver`), so a DNS answer that changes between the
check and the connection (DNS rebinding) cannot reach an internal address.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re
import smtplib
import socket
import time
from concurrent.futures import Executor
from email.message import EmailMessage
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from cxstream.core.notification import (
    Channel,
    FailureReason,
    Verdict,
    email_message,
    is_target_alert,
    parse_retry_after,
    slack_message,
    verdict,
    webhook_headers,
)
from cxstream.core.textsafe import header_text, valid_address


class Attempt(NamedTuple):
    """The outcome of one delivery attempt. `reason` says why it did not deliver (the
    `reason` label of `cxstream_notifications_failed_total`); None when delivered."""

    verdict: Verdict
    detail: str  # for the dead letter and the log: never customer data
    retry_after: float | None = None  # seconds the receiver asked to wait (Retry-After)
    reason: FailureReason | None = None


_ID_CHARS = re.compile(r"[A-Za-z0-9._-]{1,128}")
PRIVATE_REFUSAL = "URL resolves to a private, loopback or link-local address"
#: IPv6 ranges that embed an IPv4 address in their low 32 bits: IPv4-mapped (::ffff:0:0/96),
#: IPv4-translated (::ffff:0:0:0/96), IPv4-compatible (::/96, deprecated) and NAT64's
#: well-known prefix (64:ff9b::/96). The embedded address decides.
_EMBEDDING = tuple(ipaddress.ip_network(n) for n in (
    "::ffff:0:0/96", "::ffff:0:0:0/96", "::/96", "64:ff9b::/96"))
#: IPv6 ranges refused outright although Python may call them global: local-use NAT64
#: (64:ff9b:1::/48, any IPv4 inside, at a position the operator chose) and the deprecated
#: site-local fec0::/10 (routed like private addresses where still in use).
_REFUSED = tuple(ipaddress.ip_network(n) for n in ("64:ff9b:1::/48", "fec0::/10"))
_6TO4 = ipaddress.ip_network("2002::/16")


def public_address(addr: str) -> bool:
    """Whether an IP address is globally routable (not private, loopback, link-local, shared,
    reserved, site-local or multicast). IPv6 forms that carry an IPv4 address — mapped,
    translated, compatible, NAT64 (64:ff9b::/96) and 6to4 (2002::/16) — are judged by that
    IPv4 address; local-use NAT64 (64:ff9b:1::/48) and site-local (fec0::/10) are refused."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(
            addr.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in net for net in _REFUSED) or ip.is_site_local:
            return False
        if ip in _6TO4:
            ip = ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)
        elif any(ip in net for net in _EMBEDDING):
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
    """POST `body` to the channel's URL once, within `timeout_s`, after the URL policy check."""
    assert channel.url is not None
    refused = await check_url(channel.url, channel.allow_private)
    if refused:
        return Attempt("fail", refused, None, "refused")
    try:
        async with session.post(channel.url, data=body, headers=headers, allow_redirects=False,
                                timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            await resp.read()
            if 300 <= resp.status < 400:
                return Attempt("fail", f"HTTP {resp.status}: redirect not followed (configure "
                               "the final URL)", None, "http_error")
            outcome = verdict(resp.status)
            return Attempt(outcome, f"HTTP {resp.status}",
                           parse_retry_after(resp.headers.get("Retry-After")),
                           None if outcome == "delivered" else "http_error")
    except asyncio.TimeoutError:
        return Attempt("retry", f"no answer within {timeout_s:g}s", None, "timeout")
    except aiohttp.ClientError as exc:
        if isinstance(getattr(exc, "os_error", None), AddressRefused) or isinstance(
                exc.__cause__, AddressRefused):
            return Attempt("fail", PRIVATE_REFUSAL, None, "refused")
        return Attempt("retry", f"{type(exc).__name__}", None, "connection")


def _unrenderable(exc: Exception) -> Attempt:
    """An alert whose fields cannot be rendered (a missing or mistyped field): the same alert
    will never render, so the attempt fails for good. Only the exception's type is kept."""
    return Attempt("fail", f"the alert cannot be rendered ({type(exc).__name__})", None,
                   "bad_alert")


async def send_webhook(session: aiohttp.ClientSession, channel: Channel, alert: dict[str, Any],
                       timeout_s: float) -> Attempt:
    """One Standard Webhooks POST of the alert: signed with the channel's secret unless the
    channel is `unsigned`; `webhook-id` and `Idempotency-Key` are the alert id."""
    try:
        body = orjson.dumps(alert)
        headers = webhook_headers(alert["alert_id"], channel.secret, int(time.time()), body)
    except (KeyError, TypeError, ValueError, orjson.JSONEncodeError) as exc:
        return _unrenderable(exc)
    return await post_json(session, channel, body, headers, timeout_s)


async def send_slack(session: aiohttp.ClientSession, channel: Channel, alert: dict[str, Any],
                     timeout_s: float) -> Attempt:
    """One POST of the alert as a Block Kit message to a Slack incoming webhook."""
    try:
        body = orjson.dumps(slack_message(alert))
    except (KeyError, TypeError, ValueError, AttributeError, orjson.JSONEncodeError) as exc:
        return _unrenderable(exc)
    return await post_json(session, channel, body, {"Content-Type": "application/json"},
                           timeout_s)


def _smtp_send(channel: Channel, recipients: list[str], msg: EmailMessage, timeout_s: float,
               deadline: float) -> Attempt:
    """Hand `msg` to the SMTP server (blocking: runs in a thread). Does nothing once the
    attempt's `deadline` (time.monotonic()) has passed: the notifier gave up on it already,
    and a late send would repeat the e-mail after its retry or dead letter."""
    assert channel.host is not None
    if time.monotonic() >= deadline:
        return Attempt("retry", "not started within the attempt's time limit", None, "timeout")
    try:
        with smtplib.SMTP(channel.host, channel.port, timeout=timeout_s) as smtp:
            if channel.starttls:
                smtp.starttls()
            if channel.username:
                smtp.login(channel.username, channel.password or "")
            smtp.send_message(msg, to_addrs=recipients)
        return Attempt("delivered", "SMTP accepted")
    except smtplib.SMTPResponseException as exc:
        outcome: Verdict = "retry" if 400 <= exc.smtp_code < 500 else "fail"
        return Attempt(outcome, f"SMTP {exc.smtp_code}", None, "smtp_error")
    except smtplib.SMTPRecipientsRefused:
        return Attempt("fail", "SMTP refused every recipient", None, "smtp_error")
    except smtplib.SMTPNotSupportedError:
        return Attempt("fail", "the SMTP server lacks a feature the message needs (SMTPUTF8 "
                       "for a non-ASCII address, or STARTTLS)", None, "smtp_error")
    except (OSError, smtplib.SMTPException) as exc:
        # smtplib reports a socket timeout as SMTPServerDisconnected raised from it.
        if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
            return Attempt("retry", f"no answer within {timeout_s:g}s", None, "timeout")
        return Attempt("retry", f"{type(exc).__name__}", None, "connection")


def message_id_part(alert_id: str) -> str:
    """The left part of an alert's Message-ID: the alert id when it is made of letters,
    digits, `.`, `_` and `-` only (cxstream's own ids are), else a hash of it, so the header
    is always well formed and the same for every delivery of the alert."""
    if _ID_CHARS.fullmatch(alert_id):
        return alert_id
    return hashlib.sha256(alert_id.encode()).hexdigest()


def build_email(channel: Channel, alert: dict[str, Any], recipients: list[str]) -> EmailMessage:
    """The e-mail of an alert. Header values are single lines (`header_text`) and the
    recipients plain addresses (checked by the caller), so building it never raises for
    what an alert holds; the Message-ID (`message_id_part`) is the same on every delivery,
    so mail clients can thread or drop a repeat."""
    subject, text = email_message(alert)
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = header_text(channel.sender or "")
    msg["To"] = ", ".join(recipients)
    msg["Message-ID"] = f"<{message_id_part(str(alert['alert_id']))}@cxstream>"
    msg.set_content(text)
    return msg


async def send_email(channel: Channel, alert: dict[str, Any], timeout_s: float,
                     executor: Executor | None = None) -> Attempt:
    """One SMTP delivery of the alert to the channel's `to`, or else the owner's address (a
    customer alert's only: a target alert, about a segment, goes to `to` alone).

    A recipient that is not a plain address (`valid_address`: e.g. one holding a line
    break) fails the attempt for good (`bad_alert`), before any connection. The blocking SMTP
    exchange runs on `executor` (the loop's default when None); the caller bounds the
    attempt's time, and a send that has not started by then never starts."""
    target = is_target_alert(alert)
    owner = {} if target else alert.get("owner") or {}
    owner_email = owner.get("email") if isinstance(owner, dict) else None
    recipients = list(channel.to) or ([owner_email] if owner_email else [])
    if not recipients:
        return Attempt("fail", "no recipient: a target alert goes to the channel's `to` only, "
                       "and it sets none" if target else "no recipient: the owner has no "
                       "e-mail and the channel sets no `to`", None, "bad_alert")
    if not all(valid_address(r) for r in recipients):
        return Attempt("fail", "the owner's e-mail is not a plain address (local@domain, no "
                       "spaces, line breaks or control characters): fix it in cx.customers",
                       None, "bad_alert")
    try:
        msg = build_email(channel, alert, recipients)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return _unrenderable(exc)
    deadline = time.monotonic() + timeout_s
    return await asyncio.get_running_loop().run_in_executor(
        executor, _smtp_send, channel, recipients, msg, timeout_s, deadline)
