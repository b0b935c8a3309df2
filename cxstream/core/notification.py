"""Notifications to success managers: routing, rendering, signing, retry policy, cooldown.

Pure: the notifier adapter does the sending. Every delivery of one alert carries the same
`webhook-id` / `Idempotency-Key` (the alert_id), so a receiver that deduplicates on it
accepts each alert exactly once even when a crash makes cxstream deliver it again.

Alerts are read from a topic anyone with write access can fill: every piece of their text is
treated as customer text (`cxstream.core.textsafe`) wherever it lands: Slack mrkdwn escaped
and cut to Block Kit's limits, e-mail headers on one line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import random
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from cxstream.core.textsafe import clip, header_text, mrkdwn, safe_token

ChannelType = Literal["webhook", "slack", "email"]
Verdict = Literal["delivered", "retry", "fail"]
#: Why a notification failed for good: the `reason` label of
#: `cxstream_notifications_failed_total` and the `code` of its notification dead letter.
#: timeout: no answer within the attempt's time limit; refused: the channel's URL policy
#: refused the address; http_error: a non-2xx answer; smtp_error: the SMTP server refused;
#: connection: no connection (DNS, TCP, TLS); bad_alert: the alert cannot be read or sent as
#: it is (unreadable record, invalid alert id or recipient); error: anything unexpected.
FailureReason = Literal["timeout", "refused", "http_error", "smtp_error", "connection",
                        "bad_alert", "error"]
FAILURE_REASONS: tuple[FailureReason, ...] = ("timeout", "refused", "http_error", "smtp_error",
                                              "connection", "bad_alert", "error")
#: Standard Webhooks secrets: "whsec_" then the key in base64.
SECRET_PREFIX = "whsec_"
#: The longest wait a receiver's Retry-After may ask for (longer answers are cut to this).
RETRY_AFTER_MAX_S = 300.0
#: Block Kit limits (characters): header text, section text, section field text, context
#: element text; and what Slack keeps of the top-level fallback `text`.
SLACK_HEADER_MAX = 150
SLACK_SECTION_MAX = 3000
SLACK_FIELD_MAX = 2000
SLACK_CONTEXT_MAX = 2000
SLACK_FALLBACK_MAX = 3000


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    type: ChannelType
    url: str | None = None  # webhook, slack
    secret: str | None = None  # webhook signing secret (`whsec_<base64>` or plain text)
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
    unsigned: bool = False  # a webhook sent without signature, on purpose (no secret)


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
    queue_size: int = 100  # alerts read ahead and not yet handled, per alert partition


def alert_problem(alert: Any) -> str | None:
    """Why a decoded alert record cannot be notified (names the field, never its value), or
    None. The notifier dead-letters such a record instead of routing it: its id goes into HTTP
    headers and logs, and its customer id keys the delivery state."""
    if not isinstance(alert, dict):
        return "the alert is not a JSON object"
    if not safe_token(alert.get("alert_id")):
        return "alert_id must be 1 to 128 visible ASCII characters"
    customer = alert.get("customer_id")
    if not isinstance(customer, str) or not customer:
        return "customer_id must be a non-empty string"
    for key in ("owner", "segment"):
        if alert.get(key) is not None and not isinstance(alert[key], dict):
            return f"{key} must be an object"
    journey = alert.get("recent_interactions")
    if journey is not None and not (isinstance(journey, list)
                                    and all(isinstance(i, dict) for i in journey)):
        return "recent_interactions must be a list of objects"
    return None


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


def signing_key(secret: str) -> bytes:
    """The HMAC key of a channel secret. A Standard Webhooks secret (`whsec_` then base64,
    padded or not) gives its decoded bytes, as the reference libraries do; any other secret
    gives its UTF-8 bytes (cxstream's earlier scheme, kept so existing receivers still
    verify). Raises ValueError for a `whsec_` secret whose rest is not base64 or is empty."""
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode()
    b64 = secret[len(SECRET_PREFIX):]
    try:
        key = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a secret starting with whsec_ must go on with the key in base64 "
                         "(e.g. whsec_ + `openssl rand -base64 32`)") from None
    if not key:
        raise ValueError("the key after whsec_ is empty: put the base64 key after it")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks signature: base64 HMAC-SHA256 of `id.timestamp.body` with the key of
    `secret` (`signing_key`), as `v1,<sig>`."""
    mac = hmac.new(signing_key(secret), f"{msg_id}.{timestamp}.".encode() + body,
                   hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def webhook_headers(alert_id: str, secret: str | None, timestamp: int,
                    body: bytes) -> dict[str, str]:
    """Standard Webhooks headers of one delivery: `webhook-id` (= `Idempotency-Key` = the
    alert id), `webhook-timestamp` (Unix seconds) and, unless `secret` is None (a channel
    with `unsigned = true`), `webhook-signature` (`sign`)."""
    headers = {"Content-Type": "application/json", "Idempotency-Key": alert_id,
               "webhook-id": alert_id, "webhook-timestamp": str(timestamp)}
    if secret:
        headers["webhook-signature"] = sign(secret, alert_id, timestamp, body)
    return headers


def _mrk(label: str, value: object, limit: int) -> dict[str, Any]:
    """A mrkdwn text object `*label*` + newline + the escaped value, within `limit`
    characters; `verbatim` so Slack does not turn plain words into mentions or links."""
    head = f"*{label}*\n" if label else ""
    return {"type": "mrkdwn", "verbatim": True,
            "text": head + clip(mrkdwn(value), limit - len(head))}


def _journey_line(item: Mapping[str, Any]) -> str:
    outcome = f" ({item['outcome']})" if item.get("outcome") else ""
    return f"{item.get('occurred_at', '-')} {item.get('kind', '-')}{outcome}"


def slack_message(alert: Mapping[str, Any]) -> dict[str, Any]:
    """A Block Kit message: who, score, comment, segment and the recent journey.

    Every value from the alert is customer text: escaped (`&`, `<`, `>`; in the plain-text
    header too, which also loses line breaks), so it can never ping a channel (`<!channel>`)
    or form a link, and cut with an ellipsis to Block Kit's limits (header 150, section
    3000, field 2000, context 2000 characters), so Slack never rejects the message for its
    size."""
    kind = "turned detractor" if alert["kind"] == "detractor" else "recovered"
    icon = ":rotating_light:" if alert["kind"] == "detractor" else ":white_check_mark:"
    customer = str(alert["customer_id"])
    segment = ", ".join(f"{k}={v}" for k, v in sorted((alert.get("segment") or {}).items(),
                                                      key=lambda kv: str(kv[0]))) or "-"
    journey = "\n".join("• " + mrkdwn(_journey_line(i))
                        for i in (alert.get("recent_interactions") or [])[:5])
    was = alert.get("previous_category") or "no answer"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Customer " + clip(
            mrkdwn(header_text(customer, SLACK_HEADER_MAX)),
            SLACK_HEADER_MAX - len(f"Customer  {kind}")) + f" {kind}"}},
        {"type": "section", "fields": [
            _mrk("NPS score", f"{alert.get('score')} (was {was})", SLACK_FIELD_MAX),
            _mrk("Segment", segment, SLACK_FIELD_MAX),
            _mrk("Touchpoint", alert.get("touchpoint") or "-", SLACK_FIELD_MAX),
            _mrk("Customer", customer, SLACK_FIELD_MAX)]},
    ]
    comment = alert.get("comment")
    if comment:
        quoted = "\n".join("> " + mrkdwn(line) for line in str(comment).splitlines())
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "verbatim": True,
                                                   "text": clip(quoted, SLACK_SECTION_MAX)}})
    head = "*Recent journey*\n"
    blocks.append({"type": "section", "text": {
        "type": "mrkdwn", "verbatim": True,
        "text": head + clip(journey or "no recent interactions", SLACK_SECTION_MAX - len(head))}})
    blocks.append({"type": "context", "elements": [
        _mrk("", f"alert {alert['alert_id']}", SLACK_CONTEXT_MAX)]})
    fallback = f"{icon} Customer {mrkdwn(customer)} {kind} (NPS {mrkdwn(alert.get('score'))})"
    return {"text": clip(fallback, SLACK_FALLBACK_MAX), "blocks": blocks}


def email_message(alert: Mapping[str, Any]) -> tuple[str, str]:
    """(subject, plain-text body). The subject is one line of at most 200 characters
    (`header_text`: no line break or control character of the customer id can reach the
    header); the body carries the text as it is."""
    kind = "turned detractor" if alert["kind"] == "detractor" else "recovered"
    subject = header_text(f"[cxstream] Customer {header_text(alert['customer_id'], 100)} {kind} "
                          f"(NPS {header_text(alert.get('score'), 10)})", 200)
    segment = ", ".join(f"{k}={v}" for k, v in sorted((alert.get("segment") or {}).items(),
                                                      key=lambda kv: str(kv[0]))) or "-"
    lines = [f"Customer: {alert['customer_id']}",
             f"NPS score: {alert.get('score')} (previously "
             f"{alert.get('previous_category') or 'no answer'})",
             f"Answered at: {alert.get('occurred_at', '-')}",
             f"Segment: {segment}",
             f"Touchpoint / channel: {alert.get('touchpoint') or '-'} / "
             f"{alert.get('channel') or '-'}"]
    if alert.get("comment"):
        lines += ["", "Comment:", f"  {alert['comment']}"]
    lines += ["", "Recent journey:"]
    lines += [f"  {_journey_line(i)}" for i in (alert.get("recent_interactions") or [])] \
        or ["  (none)"]
    lines += ["", f"Alert id: {alert['alert_id']}"]
    return subject, "\n".join(lines) + "\n"


def verdict(status: int) -> Verdict:
    """2xx delivered; 429 and 5xx are worth retrying; any other status will not change."""
    if 200 <= status < 300:
        return "delivered"
    if status == 429 or status >= 500:
        return "retry"
    return "fail"


def backoff_s(attempt: int, cfg: NotifyConfig, rng: random.Random,
              retry_after_s: float | None = None) -> float:
    """Delay before attempt `attempt + 1`: exponential with full jitter, or the receiver's
    Retry-After when it gave one (within 0..backoff_cap_s; a non-finite one is ignored)."""
    if retry_after_s is not None and math.isfinite(retry_after_s):
        return min(max(retry_after_s, 0.0), cfg.backoff_cap_s)
    return rng.uniform(0, min(cfg.backoff_cap_s, cfg.backoff_base_s * 2 ** (attempt - 1)))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form), within 0..`RETRY_AFTER_MAX_S`:
    a negative value means no wait, a longer one is cut to the maximum. None (use the
    backoff) when there is none, or it is an HTTP date, not a number, or not finite (`nan`,
    `inf`)."""
    if not value or "_" in value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_MAX_S)


def in_cooldown(last_sent_ms: int | None, detected_ms: int, cooldown_ms: int) -> bool:
    return last_sent_ms is not None and cooldown_ms > 0 and detected_ms - last_sent_ms < cooldown_ms
