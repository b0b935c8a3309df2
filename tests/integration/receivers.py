"""Real notification receivers on 127.0.0.1: an HTTP server that verifies Standard Webhooks
signatures and can be told to fail, hang, or hang for a while (`stall`), and an SMTP server
(aiosmtpd)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from email import message_from_bytes
from email.policy import default
from typing import Any

import orjson
from aiohttp import web
from aiosmtpd.controller import Controller

from .harness import free_port

SECRET = "test-secret"


def valid_signature(headers: Any, body: bytes, secret: str = SECRET) -> bool:
    msg_id, ts, sig = headers.get("webhook-id"), headers.get("webhook-timestamp"), headers.get("webhook-signature", "")
    mac = hmac.new(secret.encode(), f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return any(hmac.compare_digest(part.split(",", 1)[-1], base64.b64encode(mac).decode())
               for part in sig.split())


@dataclass
class HttpReceiver:
    port: int = field(default_factory=free_port)
    accepted: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    calls: Counter[str] = field(default_factory=Counter)
    bad_signatures: int = 0
    slack: list[dict[str, Any]] = field(default_factory=list)
    hanging: int = 0
    #: The `stall` route holds every request until `stall_s` after its first one (the
    #: `stall_until` deadline, monotonic), then answers normally again: a receiver down for a
    #: bounded time. `stalled` counts the requests it held; `abandoned` those whose sender
    #: had hung up by the deadline (not accepted: nobody reads that answer).
    stall_s: float = 480.0
    stall_until: float | None = None
    stalled: int = 0
    abandoned: int = 0
    #: (monotonic time, mode, webhook-id) of every request, in arrival order.
    arrivals: list[tuple[float, str, str]] = field(default_factory=list)
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _hook(self, request: web.Request) -> web.Response:
        mode = request.match_info["mode"]
        body = await request.read()
        alert_id = request.headers.get("webhook-id", "?")
        self.calls[f"{mode}:{alert_id}"] += 1
        self.arrivals.append((time.monotonic(), mode, alert_id))
        if not valid_signature(request.headers, body) or request.headers.get("Idempotency-Key") != alert_id:
            self.bad_signatures += 1
            return web.Response(status=401)
        if mode == "fail":
            return web.Response(status=500)
        if mode == "flaky" and self.calls[f"{mode}:{alert_id}"] <= 2:
            return web.Response(status=503, headers={"Retry-After": "0"})
        if mode == "hang":
            self.hanging += 1
            await asyncio.sleep(3600)
        if mode == "stall" and await self._stalled(request):
            return web.Response(status=204)
        self.accepted[alert_id].append({"mode": mode, "body": orjson.loads(body),
                                        "at": time.monotonic()})
        return web.Response(status=204)

    async def _stalled(self, request: web.Request) -> bool:
        """Hold a `stall` request until the deadline; True when its sender has hung up."""
        now = time.monotonic()
        if self.stall_until is None:
            self.stall_until = now + self.stall_s
        if now >= self.stall_until:
            return False
        self.stalled += 1
        await asyncio.sleep(self.stall_until - now)
        # aiohttp does not cancel a handler whose client disconnected: look at the socket.
        if request.transport is None or request.transport.is_closing():
            self.abandoned += 1
            return True
        return False

    async def _slack(self, request: web.Request) -> web.Response:
        self.slack.append(orjson.loads(await request.read()))
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook/{mode}", self._hook)
        app.router.add_post("/slack", self._slack)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=default)))
        return "250 OK"


class SmtpReceiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.mailbox = _Mailbox()
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()
