"""HTTP API protection: an optional bearer token, and JSON (never tracebacks) for every error.

One aiohttp middleware in front of every route of the worker's web server:

- when a token is configured (`CXSTREAM_API_TOKEN` or `CXSTREAM_API_TOKEN_FILE`), every path
  needs `Authorization: Bearer <token>` (compared in constant time) except `/metrics` and
  `/healthz`, `/readyz`, which need it only when `CXSTREAM_METRICS_AUTH` /
  `CXSTREAM_HEALTH_AUTH` say so; unknown paths need it too, so an anonymous caller learns
  nothing about which paths exist. A refusal is `401` JSON with `WWW-Authenticate: Bearer`;
- unknown paths and methods answer JSON `404` / `405`;
- an unhandled exception in a view answers `500 {"error": "internal", ...}` and is logged at
  ERROR with its type, route template and code locations only: exception messages and URL
  values can carry customer data, so they are logged at DEBUG only.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import traceback
from pathlib import Path
from typing import Any, Awaitable, Callable

from aiohttp import web

from cxstream.config.settings import Settings, SettingsError

log = logging.getLogger(__name__)

HEALTH_PATHS = frozenset({"/healthz", "/readyz"})
#: The endpoint peers ask for their partitions: it needs the peer token, always.
PEER_PATH = "/_cx/partials"
METRICS_PATH = "/metrics"
REALM = "cxstream"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _token(value: str, path: str, variable: str) -> str | None:
    """A token from `CXSTREAM_<variable>` or the file `CXSTREAM_<variable>_FILE` names, or None
    when neither is set. Raises SettingsError when both are set, when the file cannot be read,
    or when the token is blank: a token of spaces would turn authentication off unnoticed."""
    if value and path:
        raise SettingsError(f"set CXSTREAM_{variable} or CXSTREAM_{variable}_FILE, not both")
    if path:
        try:
            token = Path(path).read_text().strip()
        except OSError as exc:
            raise SettingsError(f"CXSTREAM_{variable}_FILE={path!r} cannot be read: "
                                f"{exc.strerror}") from None
        if not token:
            raise SettingsError(f"CXSTREAM_{variable}_FILE={path!r} is empty")
        return token
    if value and not value.strip():
        raise SettingsError(f"CXSTREAM_{variable} is blank: set a token, or unset the variable "
                            "for no authentication")
    return value.strip() or None


def resolve_token(settings: Settings) -> str | None:
    """The configured API token, or None (no authentication); see `_token` for the errors."""
    return _token(settings.api_token, settings.api_token_file, "API_TOKEN")


def resolve_peer_token(settings: Settings) -> str | None:
    """The token workers of a group present to each other's `/_cx/partials`: the peer token
    when one is configured, else the API token, else None (queries needing a peer fail)."""
    peer = _token(settings.peer_token, settings.peer_token_file, "PEER_TOKEN")
    return peer if peer is not None else resolve_token(settings)


def auth_headers(token: str | None) -> dict[str, str]:
    """Request headers a client (the CLI, a peer worker) sends to an API with `token`."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def bearer_ok(authorization: str | None, token: str) -> bool:
    """Whether an `Authorization` header carries `token`, compared in constant time."""
    if not authorization:
        return False
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Bytes: compare_digest refuses non-ASCII str, and a header may hold anything.
    return hmac.compare_digest(credentials.strip().encode("utf-8", "replace"),
                               token.encode("utf-8", "replace"))


def needs_token(path: str, *, metrics_auth: bool, health_auth: bool) -> bool:
    if path == METRICS_PATH:
        return metrics_auth
    if path in HEALTH_PATHS:
        return health_auth
    return True


def error_response(status: int, code: str, message: str, *,
                   headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status, headers=headers)


def _unauthorized(supplied: bool) -> web.Response:
    challenge = f'Bearer realm="{REALM}"' + (', error="invalid_token"' if supplied else "")
    message = ("the API token is not valid" if supplied
               else "this endpoint requires `Authorization: Bearer <token>`")
    return error_response(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})


_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
               413: "too_large", 414: "too_large"}


def _route_name(request: web.Request) -> str:
    """The route template (`/scores/{segment}`), never the request's own path values."""
    try:
        resource = request.match_info.route.resource
        return resource.canonical if resource is not None else "(no route)"
    except Exception:  # noqa: BLE001 - only for a log line
        return "(unknown route)"


def _where(exc: BaseException) -> str:
    """Code locations of a traceback (file:line in function), without its message or locals."""
    frames = traceback.extract_tb(exc.__traceback__)
    return " <- ".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in reversed(frames[-4:]))


def middleware(token: str | None, *, peer_token: str | None = None, metrics_auth: bool = False,
               health_auth: bool = False) -> Any:
    """The aiohttp middleware: authentication, JSON errors and the 500 safety net.

    `PEER_PATH` is checked against `peer_token` and refused (403) when there is none: it
    hands out raw counts of any partition, so it is never open."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == PEER_PATH:
            if peer_token is None:
                return error_response(403, "peer_token_required",
                                      "this endpoint is for the workers of a group: set "
                                      "CXSTREAM_PEER_TOKEN (or CXSTREAM_API_TOKEN), the same on "
                                      "every worker")
            header = request.headers.get("Authorization")
            if not bearer_ok(header, peer_token):
                return _unauthorized(supplied=bool(header))
        elif token is not None and needs_token(request.path, metrics_auth=metrics_auth,
                                               health_auth=health_auth):
            header = request.headers.get("Authorization")
            if not bearer_ok(header, token):
                return _unauthorized(supplied=bool(header))
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = _HTTP_CODES.get(exc.status, "client_error" if exc.status < 500 else "server_error")
            headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            message = {404: "no such endpoint; see docs/operating/api.md",
                       405: f"method {request.method} is not allowed here"}.get(exc.status, exc.reason)
            return error_response(exc.status, code, message, headers=headers)
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - a client never sees a traceback
            log.error("internal error answering %s %s: %s at %s", request.method,
                      _route_name(request), type(exc).__name__, _where(exc))
            log.debug("details of the internal error", exc_info=exc)
            return error_response(500, "internal",
                                  "internal error while answering; the worker's log has the details")

    return guard


def install(web_app: web.Application, settings: Settings) -> str | None:
    """Put the middleware in front of `web_app`'s routes; returns the peer token this worker
    presents to its peers (None: queries that need a peer are refused). Raises SettingsError
    for a token setting it cannot use (`_token`)."""
    peer_token = resolve_peer_token(settings)
    web_app.middlewares.append(middleware(resolve_token(settings), peer_token=peer_token,
                                          metrics_auth=settings.metrics_auth,
                                          health_auth=settings.health_auth))
    return peer_token
