"""Read the notification routing file (TOML) into a NotifyConfig; errors name the field.

Format (see docs/concepts/notifications.md):

    cooldown = "1h"          # per customer, and per segment/program/window for target alerts
    max_attempts = 5
    timeout = "10s"
    kinds = ["detractor", "below_target"]   # also: "recovered", "promoter", "passive",
                                            # "at_risk", "back_on_target"
    default = "cs-webhook"   # channel when no owner or segment route matches

    [channels.cs-webhook]
    type = "webhook"
    url = "https://hooks.example.com/cx"
    secret_file = "/run/secrets/cx-webhook"   # or secret = "whsec_..."; or unsigned = true
    include_comment = true
    include_email = false

    [[routes]]
    owner = "ana@example.com"   # owner e-mail, name or Slack handle from cx.customers
    channel = "ana-mail"

    [[routes]]
    segment = "region:br"    # customer alerts of region br; target alerts of segment region:br
    channel = "slack-br"

    [[routes]]
    segment = "all"          # target alerts of the segment all
    channel = "cs-webhook"

    [[routes]]
    segment = "plan:pro"
    kinds = ["promoter"]     # optional: this route takes only these kinds
    channel = "advocacy"

    [[routes]]
    segment = "plan:enterprise"
    priority = ["urgent", "high"]   # optional: only customer alerts of these priorities
    channel = "cs-webhook"
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

from cxstream.core.notification import ALERT_KINDS, Channel, NotifyConfig, Route, signing_key
from cxstream.core.priority import PRIORITIES
from cxstream.core.textsafe import valid_address
from cxstream.core.windows import parse_duration

_CHANNEL_KEYS = {"type", "url", "secret", "secret_file", "include_comment", "include_email", "host",
                 "port", "starttls", "username", "password", "password_file", "from", "to",
                 "allow_private", "unsigned"}
#: Most alerts read ahead per alert partition (`queue_size`): a bound on the notifier's memory.
QUEUE_SIZE_MAX = 10_000


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


def _signing(name: str, spec: dict[str, Any], secret: str | None) -> bool:
    """Whether the webhook channel `name` is unsigned on purpose; raises ValueError naming the
    fix when it has neither a usable secret nor `unsigned = true`, or both."""
    unsigned = spec.get("unsigned", False)
    if not isinstance(unsigned, bool):
        raise ValueError(f"channels.{name}.unsigned must be true or false")
    if spec.get("type") != "webhook":
        if "unsigned" in spec:
            raise ValueError(f"channels.{name}.unsigned applies to webhook channels only: "
                             "remove it")
        return False
    if unsigned and secret:
        raise ValueError(f"channels.{name} sets both a secret and unsigned = true: remove one")
    if not unsigned and not secret:
        raise ValueError(f"channels.{name}: a webhook needs a signing secret (secret_file = "
                         "\"...\" or secret = \"whsec_<base64 key>\"); set unsigned = true to "
                         "send it without signature on purpose")
    if secret:
        try:
            signing_key(secret)
        except ValueError as exc:
            raise ValueError(f"channels.{name}.secret: {exc}") from None
    return bool(unsigned)


def _number(doc: dict[str, Any], key: str, default: float, *, least: float) -> float:
    """A finite number of the routing file, at least `least`; the error names the key."""
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or value < least:
        raise ValueError(f"{key} must be a number of at least {least:g} (got {value!r})")
    return float(value)


def _count(doc: dict[str, Any], key: str, default: int, least: int, most: int) -> int:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
        raise ValueError(f"{key} must be a whole number from {least} to {most} (got "
                         f"{value!r})")
    return value


def parse(doc: dict[str, Any], base: Path = Path(".")) -> NotifyConfig:
    """The NotifyConfig of a routing file's TOML document; relative `*_file` paths are read
    from `base`. Raises ValueError (KeyError, TypeError) naming the field and the fix for
    anything wrong: unknown keys, a webhook with neither a secret nor `unsigned = true`, a
    malformed `whsec_` secret or e-mail address, `max_attempts` below 1, a timeout of 0, a
    kind other than those of `ALERT_KINDS` (in `kinds` or a route's `kinds`), a route's
    `priority` that is not a non-empty list of urgent, high, normal, low."""
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
        to = [to] if isinstance(to, str) else to
        for field, addresses in (("from", [spec.get("from")] if kind == "email" else []),
                                 ("to", to)):
            for address in addresses:
                if not valid_address(address):
                    raise ValueError(f"channels.{name}.{field} must hold plain e-mail "
                                     "addresses (local@domain, no display name, spaces or "
                                     "line breaks)")
        secret = _secret(spec, "secret", base)
        unsigned = _signing(name, spec, secret)
        channels[name] = Channel(
            name=name, type=kind, url=spec.get("url"), secret=secret,
            include_comment=bool(spec.get("include_comment", True)),
            include_email=bool(spec.get("include_email", True)),
            host=spec.get("host"), port=int(spec.get("port", 25)),
            starttls=bool(spec.get("starttls", False)),
            username=spec.get("username"), password=_secret(spec, "password", base),
            sender=spec.get("from"), to=tuple(to),
            allow_private=bool(spec.get("allow_private", False)), unsigned=unsigned)
    owner_routes: list[Route] = []
    segment_routes: list[Route] = []
    for i, r in enumerate(doc.get("routes") or []):
        if r.get("channel") not in channels:
            raise ValueError(f"routes[{i}].channel {r.get('channel')!r} is not a defined channel")
        if ("owner" in r) == ("segment" in r):
            raise ValueError(f"routes[{i}] needs exactly one of owner or segment")
        route_kinds = None
        if "kinds" in r:
            route_kinds = _kinds(r["kinds"], f"routes[{i}].kinds")
            if not route_kinds:
                raise ValueError(f"routes[{i}].kinds is empty: list the kinds it takes, or "
                                 "remove it to take every kind")
        route = Route(channel=r["channel"], owner=r.get("owner"), segment=r.get("segment"),
                      kinds=route_kinds,
                      priorities=_priorities(r["priority"], f"routes[{i}].priority")
                      if "priority" in r else None)
        (owner_routes if route.owner else segment_routes).append(route)
    default = doc.get("default")
    if default is not None and default not in channels:
        raise ValueError(f"default channel {default!r} is not defined")
    kinds = _kinds(doc.get("kinds", ["detractor"]), "kinds")
    return NotifyConfig(
        channels=channels, owner_routes=tuple(owner_routes), segment_routes=tuple(segment_routes),
        default=default, cooldown_ms=parse_duration(doc["cooldown"]) if doc.get("cooldown") else 0,
        max_attempts=_count(doc, "max_attempts", 5, 1, 100),
        timeout_s=_timeout(doc),
        backoff_base_s=_number(doc, "backoff_base_seconds", 0.5, least=0),
        backoff_cap_s=_number(doc, "backoff_cap_seconds", 30.0, least=0), kinds=kinds,
        queue_size=_count(doc, "queue_size", 100, 1, QUEUE_SIZE_MAX))


def _kinds(value: Any, name: str) -> frozenset[str]:
    """A list of alert kinds of the routing file (`name`: where it is, for the error)."""
    if isinstance(value, str) or not isinstance(value, list):
        raise ValueError(f"{name} must be a list of kinds, e.g. [\"detractor\"]")
    kinds = frozenset(value)
    if not kinds <= set(ALERT_KINDS):
        raise ValueError(f"{name} may only contain " + ", ".join(ALERT_KINDS[:-1])
                         + " and " + ALERT_KINDS[-1])
    return kinds


def _priorities(value: Any, name: str) -> frozenset[str]:
    """A route's `priority`: a non-empty list of alert priorities."""
    if isinstance(value, str) or not isinstance(value, list) or not value:
        raise ValueError(f'{name} must be a non-empty list of priorities, e.g. ["urgent", "high"]')
    if not all(isinstance(v, str) and v in PRIORITIES for v in value):
        raise ValueError(f"{name} may only contain urgent, high, normal and low")
    return frozenset(value)


def _timeout(doc: dict[str, Any]) -> float:
    """`timeout` in seconds: the time limit of one whole delivery attempt."""
    if "timeout" not in doc:
        return 10.0
    seconds = parse_duration(doc["timeout"]) / 1000
    if seconds <= 0:
        raise ValueError('timeout must be a positive duration such as "10s"')
    return seconds
