"""Alert documents for the alert topic (schemas/alert.schema.json), and their CloudEvents
headers.

`alert_id` depends only on the customer and the survey response that caused the turn, so a
re-delivery after a crash carries the same id and consumers can deduplicate on it.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from cxstream.core.journey import (
    AT,
    CHANNEL,
    ID,
    KIND,
    OUTCOME,
    TOUCHPOINT,
    CustomerState,
    Journey,
    Turn,
)
from cxstream.core.model import SurveyResponse
from cxstream.core.priority import DEFAULT_RULES, PriorityRules, priority
from cxstream.core.timefmt import format_rfc3339

__all__ = ["ALERT_KINDS", "ALERT_NAMESPACE", "CE_TYPE_PREFIX", "CUSTOMER_KINDS", "SCHEMA_VERSION",
           "SEGMENT_KINDS",
           "TARGET_NAMESPACE", "alert_id", "alert_key", "build_alert", "cloudevent_headers",
           "target_alert_id"]

#: uuid5 namespace of alert ids: an arbitrary constant, fixed forever, because changing it
#: would change every alert id and consumers would see re-deliveries as new alerts.
ALERT_NAMESPACE = uuid.UUID("6f1c2d1e-6a2b-5c8e-9a51-0c7e3b1d9f42")
_NAMESPACE_BYTES = ALERT_NAMESPACE.bytes
SCHEMA_VERSION = 1
CE_TYPE_PREFIX = "com.cxstream.alert."
#: Segment alerts (`cxstream.core.targets`): a segment's score against its program's target,
#: and its NPS against the window before it. Keyed by the segment, not a customer.
SEGMENT_KINDS = ("below_target", "back_on_target", "segment_shift")
#: Customer alerts: the kinds of `cxstream.core.journey.Turn`.
CUSTOMER_KINDS = ("detractor", "recovered", "promoter", "passive", "at_risk")
#: Every alert kind, the one list the schema, routing and metrics follow.
ALERT_KINDS = (*CUSTOMER_KINDS, *SEGMENT_KINDS)
#: uuid5 namespace of target alert ids (`target_alert_id`), apart from customer alerts'.
TARGET_NAMESPACE = uuid.UUID("3b7e0a52-9d14-5f0c-8c3e-2f6a91d0b7c4")


def alert_id(customer_id: str, survey_event_id: str) -> str:
    """uuid5(ALERT_NAMESPACE, customer_id + "\\n" + survey_event_id), as text.

    The same (customer, survey response) always gives the same id, across restarts and
    replays; the format is pinned by a test, since it must never change.

    Computed as RFC 4122 (and `uuid.uuid5`) does it, without building `uuid.UUID` objects,
    which cost more than the hash itself: SHA-1 of namespace + name, version and variant
    bits set, 8-4-4-4-12 hex.
    """
    name = f"{customer_id}\n{survey_event_id}".encode()
    b = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name).digest()[:16])
    b[6] = (b[6] & 0x0F) | 0x50  # version 5
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def target_alert_id(kind: str, program: str, window: str, segment: str, boundary: int) -> str:
    """uuid5(TARGET_NAMESPACE, kind, program, window, segment and the window's end (epoch
    ms), one per line), as text: the same crossing always has the same id, across crashes
    and replays (`cxstream.core.targets`)."""
    return str(uuid.uuid5(TARGET_NAMESPACE, f"{kind}\n{program}\n{window}\n{segment}\n"
                                             f"{boundary}"))


def build_alert(state_before: CustomerState, response: SurveyResponse, turn: Turn, *,
                journey: Journey, detected_at_ms: int,
                rules: PriorityRules | None = None) -> dict[str, Any]:
    """The alert document for the turn `response` caused on `state_before`.

    `program` is the id of the survey program `response` answered (an nps program, or for
    `at_risk` a csat or ces one; the metric itself for a built-in one): always present in
    what cxstream writes, optional in the schema because alerts written by earlier releases
    lack it. An `at_risk` alert also names the answer's `metric` (csat or ces); its `score`
    is on that program's scale.

    One response causes at most one turn, so `alert_id` (of the customer and the response)
    stays unique across every kind.

    Context is the state *before* the response, i.e. as known when it was processed:
    `owner` is the profile's owner (null without a profile); `segment` is the response's
    own segment when it has one (the survey tool knew it at answer time), else the
    profile's, else {}; `recent_interactions` is `journey`, the customer's kept interactions
    (newest first).

    `value` is the profile's value object (`tier`, `arr`, `currency`; null without one), and
    `priority` what `rules` (`cxstream.core.priority`; None: the defaults) give for it.
    """
    r = response
    if (r.survey == "nps") == (turn.kind == "at_risk"):
        raise ValueError("NPS responses cause NPS turns, CSAT and CES ones at_risk")
    if r.customer_id != state_before.customer_id:
        raise ValueError("response belongs to another customer than this state")
    if turn.kind not in ALERT_KINDS:
        raise ValueError(f"unknown turn kind {turn.kind!r}")
    profile = state_before.profile or {}
    owner = profile.get("owner")
    value = profile.get("value")
    doc: dict[str, Any] = {
        "alert_id": alert_id(r.customer_id, r.event_id),
        "kind": turn.kind,
        "customer_id": r.customer_id,
        "survey_event_id": r.event_id,
        "program": r.program,
        "score": r.score,
        "previous_category": turn.previous_category,
        "occurred_at": format_rfc3339(r.occurred_at),
        "detected_at": format_rfc3339(detected_at_ms),
        "segment": dict(r.segment) if r.segment else dict(profile.get("seg") or {}),
        "touchpoint": r.touchpoint,
        "channel": r.channel,
        "comment": r.comment,
        "owner": dict(owner) if owner is not None else None,
        "recent_interactions": [
            {"event_id": e[ID], "kind": e[KIND], "occurred_at": format_rfc3339(e[AT]),
             "touchpoint": e[TOUCHPOINT], "channel": e[CHANNEL], "outcome": e[OUTCOME]}
            for e in journey
        ],
        "priority": priority(DEFAULT_RULES if rules is None else rules, turn.kind, value,
                             r.comment),
        "value": dict(value) if value is not None else None,
        "schema_version": SCHEMA_VERSION,
    }
    if turn.kind == "at_risk":
        doc["metric"] = r.survey
    return doc


def alert_key(alert: dict[str, Any]) -> bytes:
    """The alert's record key on the alert topic: what it is about, the customer
    (`customer_id`) or, for a target alert, the segment (`segment_key`)."""
    if alert.get("kind") in SEGMENT_KINDS:
        return str(alert["segment_key"]).encode()
    return str(alert["customer_id"]).encode()


def cloudevent_headers(alert: dict[str, Any], *, source: str) -> list[tuple[str, bytes]]:
    """Kafka headers of the CloudEvents Kafka protocol binding, binary content mode (the
    record value is the alert document itself, so non-CloudEvents consumers just read it).

    `source` identifies the producer, e.g. "cxstream/<app id>".
    """
    kind = alert["kind"]
    if kind not in ALERT_KINDS:
        raise ValueError(f"unknown alert kind {kind!r}")
    if not source:
        raise ValueError("CloudEvents source must not be empty")
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", alert["alert_id"].encode()),
        ("ce_type", f"{CE_TYPE_PREFIX}{kind}".encode()),
        ("ce_source", source.encode()),
        ("ce_time", alert["detected_at"].encode()),
        ("content-type", b"application/json"),
    ]
