"""Delivery of one notification over one channel: HTTP (webhook, Slack) and SMTP.

Each call makes one attempt and returns (verdict, detail, retry_after); the notifier owns
retries. Redirects are never followed. Unless a channel sets `allow_private`, URLs must be
https and must not resolve to private, loopback or link-local addresses.
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
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast:
            return "URL resolves to a private, loopback or link-local address"
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
            return verdict(resp.status), f"HTTP {resp.status}", parse_retry_after(resp.headers.get("Retry-After"))
    except asyncio.TimeoutError:
        return "retry", f"no answer within {timeout_s:g}s", None
    except aiohttp.ClientError as exc:
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
