"""Read the notification routing file (TOML) into a NotifyConfig; errors name the field.

Format (see docs/concepts/notifications.md):

    cooldown = "1h"          # per customer; the alert topic still carries every turn
    max_attempts = 5
    timeout = "10s"
    kinds = ["detractor"]    # add "recovered" to notify recoveries too
    default = "cs-webhook"   # channel when no owner or segment route matches

    [channels.cs-webhook]
    type = "webhook"
    url = "https://hooks.example.com/cx"
    secret_file = "/run/secrets/cx-webhook"   # or secret = "..."
    include_comment = true
    include_email = false

    [[routes]]
    owner = "ana@example.com"   # owner e-mail, name or Slack handle from cx.customers
    channel = "ana-mail"

    [[routes]]
    segment = "region:br"
    channel = "slack-br"
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from cxstream.core.notification import Channel, NotifyConfig, Route
from cxstream.core.windows import parse_duration

_CHANNEL_KEYS = {"type", "url", "secret", "secret_file", "include_comment", "include_email", "host",
                 "port", "starttls", "username", "password", "password_file", "from", "to",
                 "allow_private"}


class NotifyConfigError(ValueError):
    """The routing file is wrong; the message names the file and the field."""


def load(path: Path) -> NotifyConfig:
    try:
        doc = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise NotifyConfigError(f"cannot read notification config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise NotifyConfigError(f"{path} is not valid TOML: {exc}") from None
    try:
        return parse(doc, base=Path(path).parent)
    except (KeyError, TypeError, ValueError) as exc:
        raise NotifyConfigError(f"{path}: {exc}") from None


def _secret(spec: dict[str, Any], key: str, base: Path) -> str | None:
    if f"{key}_file" in spec:
        return (base / spec[f"{key}_file"]).read_text().strip()
    value = spec.get(key)
    return str(value) if value is not None else None


def parse(doc: dict[str, Any], base: Path = Path(".")) -> NotifyConfig:
    channels: dict[str, Channel] = {}
    for name, spec in (doc.get("channels") or {}).items():
        unknown = set(spec) - _CHANNEL_KEYS
        if unknown:
            raise ValueError(f"channels.{name}: unknown key(s) {sorted(unknown)}")
        kind = spec.get("type")
        if kind not in ("webhook", "slack", "email"):
            raise ValueError(f"channels.{name}.type must be webhook, slack or email")
        if kind in ("webhook", "slack") and not spec.get("url"):
            raise ValueError(f"channels.{name}.url is required for {kind}")
        if kind == "email" and not (spec.get("host") and spec.get("from")):
            raise ValueError(f"channels.{name}: host and from are required for email")
        to = spec.get("to", [])
        channels[name] = Channel(
            name=name, type=kind, url=spec.get("url"), secret=_secret(spec, "secret", base),
            include_comment=bool(spec.get("include_comment", True)),
            include_email=bool(spec.get("include_email", True)),
            host=spec.get("host"), port=int(spec.get("port", 25)), starttls=bool(spec.get("starttls", False)),
            username=spec.get("username"), password=_secret(spec, "password", base),
            sender=spec.get("from"), to=tuple([to] if isinstance(to, str) else to),
            allow_private=bool(spec.get("allow_private", False)))
    owner_routes, segment_routes = [], []
    for i, r in enumerate(doc.get("routes") or []):
        if r.get("channel") not in channels:
            raise ValueError(f"routes[{i}].channel {r.get('channel')!r} is not a defined channel")
        if ("owner" in r) == ("segment" in r):
            raise ValueError(f"routes[{i}] needs exactly one of owner or segment")
        route = Route(channel=r["channel"], owner=r.get("owner"), segment=r.get("segment"))
        (owner_routes if route.owner else segment_routes).append(route)
    default = doc.get("default")
    if default is not None and default not in channels:
        raise ValueError(f"default channel {default!r} is not defined")
    kinds = frozenset(doc.get("kinds", ["detractor"]))
    if not kinds <= {"detractor", "recovered"}:
        raise ValueError("kinds may only contain detractor and recovered")
    return NotifyConfig(
        channels=channels, owner_routes=tuple(owner_routes), segment_routes=tuple(segment_routes),
        default=default, cooldown_ms=parse_duration(doc["cooldown"]) if doc.get("cooldown") else 0,
        max_attempts=int(doc.get("max_attempts", 5)),
        timeout_s=parse_duration(doc["timeout"]) / 1000 if "timeout" in doc else 10.0,
        backoff_base_s=float(doc.get("backoff_base_seconds", 0.5)),
        backoff_cap_s=float(doc.get("backoff_cap_seconds", 30.0)), kinds=kinds)
