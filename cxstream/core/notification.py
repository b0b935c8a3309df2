"""Notifications to success managers: routing, rendering, signing, retry policy, cooldown.

Pure: the notifier adapter does the sending. Every delivery of one alert carries the same
`webhook-id` / `Idempotency-Key` (the alert_id), so a receiver that deduplicates on it
accepts each alert exactly once even when a crash makes cxstream deliver it again.

Two families of alerts are notified: customer alerts (`detractor`, `recovered`, `promoter`,
`passive`, `at_risk`: about one customer, keyed by its `customer_id`) and target alerts (`below_target`, `back_on_target`:
about one segment's score against its program's target, keyed by `segment_key`). Which
family an alert is of depends on its `kind` alone (`is_target_alert`).

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

from cxstream.core.alert import ALERT_KINDS as _ALL_KINDS
from cxstream.core.alert import CUSTOMER_KINDS as _CUSTOMER_KINDS
from cxstream.core.alert import SEGMENT_KINDS
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
#: The kinds of customer alerts (about one customer) and of target alerts (about a segment).
CUSTOMER_KINDS: frozenset[str] = frozenset(_CUSTOMER_KINDS)
#: (A segment's trend, `segment_shift`, is routed and delivered like a target alert.)
TARGET_KINDS: frozenset[str] = frozenset(SEGMENT_KINDS)
#: Every kind a routing file's `kinds` may name.
ALERT_KINDS: tuple[str, ...] = _ALL_KINDS
#: How each customer kind reads in a message ("Customer c1 turned promoter"), and its icon.
_CUSTOMER_TEXT: Mapping[str, tuple[str, str]] = {
    "detractor": ("turned detractor", ":rotating_light:"),
    "recovered": ("recovered", ":white_check_mark:"),
    "promoter": ("turned promoter", ":star:"),
    "passive": ("slipped to passive", ":warning:"),
    "at_risk": ("is at risk", ":warning:"),
}
#: How a target alert's metric is named in messages.
_METRIC_NAMES: Mapping[str, str] = {"nps": "NPS", "csat": "CSAT", "ces": "CES"}


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
    # matches "<dimension>:<value>" of a customer alert's segment, touchpoint or channel, or
    # a target alert's segment_key ("all" included)
    segment: str | None = None
    # the only alert kinds this route takes (None: every kind notified)
    kinds: frozenset[str] | None = None
    # the only customer-alert priorities this route takes (None: any, and segment alerts)
    priorities: frozenset[str] | None = None


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


def is_target_alert(alert: Mapping[str, Any]) -> bool:
    """Whether `alert` is a target alert (its `kind` is in `TARGET_KINDS`); any other kind is
    read as a customer alert. Never raises, whatever `kind` holds."""
    kind = alert.get("kind")
    return isinstance(kind, str) and kind in TARGET_KINDS


def _subject_keys(alert: Mapping[str, Any]) -> tuple[str, ...]:
    """The fields a segment alert's delivery subject is made of: a trend has no program."""
    if alert.get("kind") == "segment_shift":
        return ("segment_key", "window")
    return ("segment_key", "program", "window")


def delivery_subject(alert: Mapping[str, Any]) -> str | None:
    """What the notifier's delivery state (recent alert ids, cooldown) is kept per, and the
    key of its `notifications.sent` and dead-letter records: a customer alert's
    `customer_id`; for a target alert `target|<segment_key>|<program>|<window>`, so each
    segment's target of each program and window has its own cooldown. None when the fields
    it is made of are not non-empty strings (an alert `alert_problem` refuses)."""
    if is_target_alert(alert):
        parts = [alert.get(k) for k in _subject_keys(alert)]
        texts = [p for p in parts if isinstance(p, str) and p]
        prefix = "shift" if alert.get("kind") == "segment_shift" else "target"
        return "|".join([prefix, *texts]) if len(texts) == len(parts) else None
    customer = alert.get("customer_id")
    return customer if isinstance(customer, str) and customer else None


def alert_problem(alert: Any) -> str | None:
    """Why a decoded alert record cannot be notified (names the field, never its value), or
    None. The notifier dead-letters such a record instead of routing it: its id goes into HTTP
    headers and logs, and its `delivery_subject` keys the delivery state.

    A customer alert needs a non-empty `customer_id`; a target alert needs none, but a
    non-empty `segment_key`, `program` and `window` (strings); `kind`, when present, is a
    string. When None is returned, `delivery_subject` is not None."""
    if not isinstance(alert, dict):
        return "the alert is not a JSON object"
    if not safe_token(alert.get("alert_id")):
        return "alert_id must be 1 to 128 visible ASCII characters"
    if alert.get("kind") is not None and not isinstance(alert["kind"], str):
        return "kind must be a string"
    if is_target_alert(alert):
        for key in _subject_keys(alert):
            value = alert.get(key)
            if not isinstance(value, str) or not value:
                return f"{key} must be a non-empty string"
    else:
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
    """Channels for an alert, each once, in the routing file's order: by owner, else by
    segment, else the default (possibly none).

    A customer alert's segment routes match `<dimension>:<value>` of its segment, touchpoint
    and channel. A target alert is routed by its `segment_key` alone (a route `segment =
    "all"` matches the segment `all`); owner routes never match it. A route with `kinds`
    matches only alerts of those kinds (so promoters can go to a marketing channel and
    passives to the success manager); the others pass over it as if it were not there. So
    does a route with `priority` for an alert of another priority, or of none (segment
    alerts, customer alerts of earlier releases)."""
    kind, prio = alert.get("kind"), alert.get("priority")
    owner_routes = [r for r in cfg.owner_routes if _takes(r, kind, prio)]
    segment_routes = [r for r in cfg.segment_routes if _takes(r, kind, prio)]
    if is_target_alert(alert):
        by_key = [r.channel for r in segment_routes if r.segment == alert["segment_key"]]
        if by_key:
            return list(dict.fromkeys(by_key))
        return [cfg.default] if cfg.default else []
    owner = alert.get("owner") or {}
    ids = {v for v in (owner.get("email"), owner.get("name"), owner.get("slack")) if v}
    by_owner = [r.channel for r in owner_routes if r.owner in ids]
    if by_owner:
        return list(dict.fromkeys(by_owner))
    segments = {f"{k}:{v}" for k, v in (alert.get("segment") or {}).items()}
    for key in ("touchpoint", "channel"):
        if alert.get(key):
            segments.add(f"{key}:{alert[key]}")
    by_segment = [r.channel for r in segment_routes if r.segment in segments]
    if by_segment:
        return list(dict.fromkeys(by_segment))
    return [cfg.default] if cfg.default else []


def redact(alert: Mapping[str, Any], channel: Channel) -> dict[str, Any]:
    """The alert as this channel may see it (privacy switches): without the comment
    (`include_comment = false`) or the owner's e-mail (`include_email = false`). A copy; a
    target alert, which carries neither, gains no `comment` field."""
    out = dict(alert)
    if not channel.include_comment and ("comment" in out or not is_target_alert(out)):
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


def _takes(r: Route, kind: Any, prio: Any) -> bool:
    return (r.kinds is None or kind in r.kinds) and (
        r.priorities is None or prio in r.priorities)


def priority_text(alert: Mapping[str, Any]) -> str | None:
    """`urgent (tier strategic, ARR 250,000 EUR)`: the alert's priority and the customer's
    value, or None when the alert has no priority (segment alerts, earlier releases)."""
    prio = alert.get("priority")
    if not prio:
        return None
    value = alert.get("value")
    parts = []
    if isinstance(value, Mapping):
        if value.get("tier"):
            parts.append(f"tier {value['tier']}")
        arr = value.get("arr")
        if isinstance(arr, (int, float)) and not isinstance(arr, bool):
            amount = f"{arr:,}" if isinstance(arr, int) or arr != int(arr) else f"{int(arr):,}"
            parts.append(f"ARR {amount} {value.get('currency') or ''}".rstrip())
    return f"{prio} ({', '.join(parts)})" if parts else str(prio)


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
    size. A target alert gets its own message (`_slack_target`)."""
    if is_target_alert(alert):
        return _slack_target(alert)
    kind, icon = _customer_text(alert)
    score_name = _score_name(alert)
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
            _mrk(f"{score_name} score", f"{alert.get('score')} ({_was(alert)} {was})",
                 SLACK_FIELD_MAX),
            _mrk("Segment", segment, SLACK_FIELD_MAX),
            _mrk("Touchpoint", alert.get("touchpoint") or "-", SLACK_FIELD_MAX),
            _mrk("Customer", customer, SLACK_FIELD_MAX)]},
    ]
    if (prio := priority_text(alert)) is not None:
        blocks[1]["fields"].append(_mrk("Priority", prio, SLACK_FIELD_MAX))
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
    fallback = (f"{icon} Customer {mrkdwn(customer)} {kind} "
                f"({mrkdwn(score_name)} {mrkdwn(alert.get('score'))})")
    return {"text": clip(fallback, SLACK_FALLBACK_MAX), "blocks": blocks}


def _customer_text(alert: Mapping[str, Any]) -> tuple[str, str]:
    """(what happened, Slack icon) of a customer alert; a kind of a later release reads as
    its name."""
    kind = alert.get("kind")
    return _CUSTOMER_TEXT.get(kind, (str(kind), ":bell:")) if isinstance(kind, str) else \
        (str(kind), ":bell:")


def _score_name(alert: Mapping[str, Any]) -> str:
    """What the alert's score is: `NPS`, or for an at_risk alert its metric and program
    ("CSAT csat-delivery")."""
    if alert.get("kind") != "at_risk":
        return "NPS"
    metric = alert.get("metric")
    name = _METRIC_NAMES.get(metric, str(metric)) if isinstance(metric, str) else str(metric)
    program = alert.get("program")
    return name if not program or program == metric else f"{name} {program}"


def _was(alert: Mapping[str, Any], word: str = "was") -> str:
    """How the previous category is introduced: for at_risk, it is the NPS category now."""
    return "NPS category" if alert.get("kind") == "at_risk" else word


def email_message(alert: Mapping[str, Any]) -> tuple[str, str]:
    """(subject, plain-text body). The subject is one line of at most 200 characters
    (`header_text`: no line break or control character of the customer id can reach the
    header); the body carries the text as it is. A target alert gets its own message
    (`_email_target`)."""
    if is_target_alert(alert):
        return _email_target(alert)
    kind, _ = _customer_text(alert)
    score_name = _score_name(alert)
    subject = header_text(f"[cxstream] Customer {header_text(alert['customer_id'], 100)} {kind} "
                          f"({header_text(score_name, 20)} {header_text(alert.get('score'), 10)})",
                          200)
    segment = ", ".join(f"{k}={v}" for k, v in sorted((alert.get("segment") or {}).items(),
                                                      key=lambda kv: str(kv[0]))) or "-"
    lines = [f"Customer: {alert['customer_id']}",
             f"{score_name} score: {alert.get('score')} ({_was(alert, 'previously')} "
             f"{alert.get('previous_category') or 'no answer'})",
             f"Answered at: {alert.get('occurred_at', '-')}",
             f"Segment: {segment}",
             f"Touchpoint / channel: {alert.get('touchpoint') or '-'} / "
             f"{alert.get('channel') or '-'}"]
    if (prio := priority_text(alert)) is not None:
        lines.append(f"Priority: {prio}")
    if alert.get("comment"):
        lines += ["", "Comment:", f"  {alert['comment']}"]
    lines += ["", "Recent journey:"]
    lines += [f"  {_journey_line(i)}" for i in (alert.get("recent_interactions") or [])] \
        or ["  (none)"]
    lines += ["", f"Alert id: {alert['alert_id']}"]
    return subject, "\n".join(lines) + "\n"


# -- target alerts ------------------------------------------------------------------------------
def _target_parts(alert: Mapping[str, Any]) -> dict[str, str]:
    """The plain-text pieces of a target alert's messages, unescaped: `what` ("rnps below
    target in region:br"), `score` ("NPS 41.5 (target 50)"; a csat score and target in %),
    `window`, `responses` and `margin` ("±9.8", or why there is none)."""
    if alert["kind"] == "segment_shift":
        return _shift_parts(alert)
    metric = alert.get("metric")
    unit = "%" if metric == "csat" else ""
    name = _METRIC_NAMES.get(metric, str(metric)) if isinstance(metric, str) else str(metric)
    state = "below target" if alert["kind"] == "below_target" else "back on target"
    margin = alert.get("margin_of_error")
    return {
        "what": f"{alert.get('program')} {state} in {alert['segment_key']}",
        "score": f"{name} {alert.get('score')}{unit} (target {alert.get('target')}{unit})",
        "window": f"{alert.get('window')}: {alert.get('window_start', '-')} to "
                  f"{alert.get('window_end', '-')}",
        "responses": str(alert.get("responses")),
        "margin": f"±{margin}{unit} (95%)" if margin is not None
                  else "- (not kept for CES)" if metric == "ces" else "-",
    }


def _number(value: object, signed: bool = False) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def _shift_parts(alert: Mapping[str, Any]) -> dict[str, str]:
    """`_target_parts` of a `segment_shift`: `what` ("NPS down in region:br"), `score`
    ("NPS -0.5, was 28.5: -29.0 points"), `window`, `responses` (both windows') and `margin`
    (the change's interval and level)."""
    interval = alert.get("interval")
    low, high = interval if isinstance(interval, list) and len(interval) == 2 else ("-", "-")
    level = alert.get("level")
    shown = f"{100 * level:g}%" if isinstance(level, (int, float)) else str(level)
    return {
        "what": f"NPS {alert.get('direction')} in {alert['segment_key']}",
        "score": f"NPS {_number(alert.get('nps'))}, was {_number(alert.get('previous_nps'))}: "
                 f"{_number(alert.get('change'), signed=True)} points",
        "window": f"{alert.get('window')}: {alert.get('window_start', '-')} to "
                  f"{alert.get('window_end', '-')}, against the {alert.get('window')} from "
                  f"{alert.get('previous_start', '-')}",
        "responses": f"{alert.get('responses')} (before: {alert.get('previous_responses')})",
        "margin": f"interval [{_number(low)}, {_number(high)}] at {shown}",
    }


def _slack_target(alert: Mapping[str, Any]) -> dict[str, Any]:
    """The Block Kit message of a target alert: program, state and segment in the header;
    score against target, window, responses and margin of error in fields; the alert id.
    Every value from the alert is escaped and cut as in `slack_message`."""
    p = _target_parts(alert)
    down = alert["kind"] == "below_target" or alert.get("direction") == "down"
    icon = ":chart_with_downwards_trend:" if down else \
        ":chart_with_upwards_trend:" if alert["kind"] == "segment_shift" else ":white_check_mark:"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(
            mrkdwn(header_text(p["what"], SLACK_HEADER_MAX)), SLACK_HEADER_MAX)}},
        {"type": "section", "fields": [
            _mrk("Score", p["score"], SLACK_FIELD_MAX),
            _mrk("Segment", alert["segment_key"], SLACK_FIELD_MAX),
            _mrk("Window", p["window"], SLACK_FIELD_MAX),
            _mrk("Responses", f"{p['responses']}, "
                 f"{'' if alert['kind'] == 'segment_shift' else 'margin of error '}{p['margin']}",
                 SLACK_FIELD_MAX)]},
        {"type": "context", "elements": [
            _mrk("", f"alert {alert['alert_id']}, detected at {alert.get('detected_at', '-')}",
                 SLACK_CONTEXT_MAX)]},
    ]
    fallback = f"{icon} {mrkdwn(p['what'])}: {mrkdwn(p['score'])} over " \
               f"{mrkdwn(alert.get('window'))}"
    return {"text": clip(fallback, SLACK_FALLBACK_MAX), "blocks": blocks}


def _email_target(alert: Mapping[str, Any]) -> tuple[str, str]:
    """(subject, plain-text body) of a target alert. The subject, e.g. `[cxstream] rnps below
    target in region:br: NPS 41.5 (target 50) over 7d`, is one line of at most 200
    characters, each piece from the alert made one line first (`header_text`); the body
    carries the text as it is."""
    p = _target_parts(alert)
    subject = header_text(f"[cxstream] {header_text(p['what'], 120)}: "
                          f"{header_text(p['score'], 60)} over "
                          f"{header_text(alert.get('window'), 20)}", 200)
    shift = alert["kind"] == "segment_shift"
    lines = [f"Program: {alert.get('program')} ({alert.get('metric')})" if not shift
             else "Metric: NPS (every NPS program)",
             f"Segment: {alert['segment_key']}",
             f"Score: {p['score']}",
             f"Window: {p['window']}",
             f"Responses: {p['responses']}",
             f"{'Change' if shift else 'Margin of error'}: {p['margin']}",
             f"Detected at: {alert.get('detected_at', '-')}",
             "", f"Alert id: {alert['alert_id']}"]
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
