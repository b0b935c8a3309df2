"""Notifications to success managers: routing, rendering, signing, retry policy, cooldown.

Pure: the notifier adapter does the sending. Every delivery of one alert carries the same
`webhook-id` / `Idempotency-Key` (the alert_id), so a receiver that deduplicates on it
accepts each alert exactly once even when a crash makes cxstream deliver it again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

ChannelType = Literal["webhook", "slack", "email"]
Verdict = Literal["delivered", "retry", "fail"]


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    type: ChannelType
    url: str | None = None  # webhook, slack
    secret: str | None = None  # webhook signing secret
    include_comment: bool = True
    include_email: bool = True
    # e-mail
    host: str | None = None
    port: int = 25
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    sender: str | None = None
    to: tuple[str, ...] = ()  # empty: the owner's address
    allow_private: bool = False  # allow http:// and private/loopback addresses (tests, labs)


@dataclass(frozen=True, slots=True)
class Route:
    channel: str
    owner: str | None = None  # matches the owner's e-mail, name or Slack handle
    segment: str | None = None  # matches "<dimension>:<value>" of the alert's segment


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    channels: Mapping[str, Channel]
    owner_routes: tuple[Route, ...] = ()
    segment_routes: tuple[Route, ...] = ()
    default: str | None = None
    cooldown_ms: int = 0
    max_attempts: int = 5
    timeout_s: float = 10.0
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    kinds: frozenset[str] = field(default_factory=lambda: frozenset({"detractor"}))


def route(alert: Mapping[str, Any], cfg: NotifyConfig) -> list[str]:
    """Channels for an alert: by owner, else by segment, else the default (possibly none)."""
    owner = alert.get("owner") or {}
    ids = {v for v in (owner.get("email"), owner.get("name"), owner.get("slack")) if v}
    by_owner = [r.channel for r in cfg.owner_routes if r.owner in ids]
    if by_owner:
        return list(dict.fromkeys(by_owner))
    segments = {f"{k}:{v}" for k, v in (alert.get("segment") or {}).items()}
    for key in ("touchpoint", "channel"):
        if alert.get(key):
            segments.add(f"{key}:{alert[key]}")
    by_segment = [r.channel for r in cfg.segment_routes if r.segment in segments]
    if by_segment:
        return list(dict.fromkeys(by_segment))
    return [cfg.default] if cfg.default else []


def redact(alert: Mapping[str, Any], channel: Channel) -> dict[str, Any]:
    """The alert as this channel may see it (privacy switches)."""
    out = dict(alert)
    if not channel.include_comment:
        out["comment"] = None
    if not channel.include_email and out.get("owner"):
        out["owner"] = {**out["owner"], "email": None}
    return out


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks signature: base64 HMAC-SHA256 of `id.timestamp.body`, as `v1,<sig>`."""
    mac = hmac.new(secret.encode(), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def webhook_headers(alert_id: str, secret: str | None, timestamp: int, body: bytes) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Idempotency-Key": alert_id,
               "webhook-id": alert_id, "webhook-timestamp": str(timestamp)}
    if secret:
        headers["webhook-signature"] = sign(secret, alert_id, timestamp, body)
    return headers


def slack_message(alert: Mapping[str, Any]) -> dict[str, Any]:
    """A Block Kit message: who, score, comment, segment and the recent journey."""
    kind = "turned detractor" if alert["kind"] == "detractor" else "recovered"
    icon = ":rotating_light:" if alert["kind"] == "detractor" else ":white_check_mark:"
    segment = ", ".join(f"{k}={v}" for k, v in sorted((alert.get("segment") or {}).items())) or "-"
    journey = "\n".join(f"• {i['occurred_at']} {i['kind']}" + (f" ({i['outcome']})" if i.get("outcome") else "")
                        for i in alert.get("recent_interactions", [])[:5]) or "no recent interactions"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"Customer {alert['customer_id']} {kind}"}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*NPS score*\n{alert['score']} (was {alert.get('previous_category') or 'no answer'})"},
            {"type": "mrkdwn", "text": f"*Segment*\n{segment}"},
            {"type": "mrkdwn", "text": f"*Touchpoint*\n{alert.get('touchpoint') or '-'}"},
            {"type": "mrkdwn", "text": f"*Customer*\n`{alert['customer_id']}`"}]},
    ]
    if alert.get("comment"):
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"> {alert['comment']}"}})
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Recent journey*\n{journey}"}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"alert `{alert['alert_id']}`"}]})
    return {"text": f"{icon} Customer {alert['customer_id']} {kind} (NPS {alert['score']})", "blocks": blocks}


def email_message(alert: Mapping[str, Any]) -> tuple[str, str]:
    """(subject, plain-text body)."""
    kind = "turned detractor" if alert["kind"] == "detractor" else "recovered"
    subject = f"[cxstream] Customer {alert['customer_id']} {kind} (NPS {alert['score']})"
    lines = [f"Customer: {alert['customer_id']}",
             f"NPS score: {alert['score']} (previously {alert.get('previous_category') or 'no answer'})",
             f"Answered at: {alert['occurred_at']}",
             f"Segment: {', '.join(f'{k}={v}' for k, v in sorted((alert.get('segment') or {}).items())) or '-'}",
             f"Touchpoint / channel: {alert.get('touchpoint') or '-'} / {alert.get('channel') or '-'}"]
    if alert.get("comment"):
        lines += ["", "Comment:", f"  {alert['comment']}"]
    lines += ["", "Recent journey:"]
    lines += [f"  {i['occurred_at']}  {i['kind']}" + (f" ({i['outcome']})" if i.get("outcome") else "")
              for i in alert.get("recent_interactions", [])] or ["  (none)"]
    lines += ["", f"Alert id: {alert['alert_id']}"]
    return subject, "\n".join(lines) + "\n"


def verdict(status: int) -> Verdict:
    """2xx delivered; 429 and 5xx are worth retrying; any other status will not change."""
    if 200 <= status < 300:
        return "delivered"
    if status == 429 or status >= 500:
        return "retry"
    return "fail"


def backoff_s(attempt: int, cfg: NotifyConfig, rng: random.Random, retry_after_s: float | None = None) -> float:
    """Delay before attempt `attempt + 1`: exponential with full jitter, or the receiver's
    Retry-After when it gave one (capped by backoff_cap_s)."""
    if retry_after_s is not None:
        return min(max(retry_after_s, 0.0), cfg.backoff_cap_s)
    return rng.uniform(0, min(cfg.backoff_cap_s, cfg.backoff_base_s * 2 ** (attempt - 1)))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form; HTTP dates are ignored)."""
    if not value:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


def in_cooldown(last_sent_ms: int | None, detected_ms: int, cooldown_ms: int) -> bool:
    return last_sent_ms is not None and cooldown_ms > 0 and detected_ms - last_sent_ms < cooldown_ms
