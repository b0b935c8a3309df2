"""Alert documents for the alert topic, and their CloudEvents headers.

`alert_id` depends only on the customer and the survey response that caused the turn, so a
re-delivery after a crash carries the same id and consumers can deduplicate on it.
"""

from __future__ import annotations

import uuid
from typing import Any

from cxstream.core.journey import CustomerState, Turn
from cxstream.core.model import SurveyResponse
from cxstream.core.timefmt import format_rfc3339

#: Fixed forever: changing it would change every alert id.
ALERT_NAMESPACE = uuid.UUID("6f1c2d1e-6a2b-5c8e-9a51-0c7e3b1d9f42")
SCHEMA_VERSION = 1


def alert_id(customer_id: str, survey_event_id: str) -> str:
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{customer_id}\n{survey_event_id}"))


def build_alert(before: CustomerState, r: SurveyResponse, turn: Turn, *,
                detected_at_ms: int) -> dict[str, Any]:
    """The alert document (schemas/alert.schema.json).

    `segment` is the response's own segment when it has one, else the profile's; `owner` is
    the profile's as known when the response was processed.
    """
    profile = before.profile or {}
    return {
        "alert_id": alert_id(r.customer_id, r.event_id),
        "kind": turn.kind,
        "customer_id": r.customer_id,
        "survey_event_id": r.event_id,
        "score": r.score,
        "previous_category": turn.previous_category,
        "occurred_at": format_rfc3339(r.occurred_at),
        "detected_at": format_rfc3339(detected_at_ms),
        "segment": dict(r.segment) if r.segment else dict(profile.get("seg") or {}),
        "touchpoint": r.touchpoint,
        "channel": r.channel,
        "comment": r.comment,
        "owner": profile.get("owner"),
        "recent_interactions": [
            {"event_id": e["id"], "kind": e["kind"], "occurred_at": format_rfc3339(e["at"]),
             "touchpoint": e["tp"], "channel": e["ch"], "outcome": e["out"]}
            for e in before.journey
        ],
        "schema_version": SCHEMA_VERSION,
    }


def cloudevent_headers(alert: dict[str, Any], *, source: str) -> list[tuple[str, bytes]]:
    """CloudEvents Kafka protocol binding, binary content mode."""
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", alert["alert_id"].encode()),
        ("ce_type", f"com.cxstream.alert.{alert['kind']}".encode()),
        ("ce_source", source.encode()),
        ("ce_time", alert["detected_at"].encode()),
        ("content-type", b"application/json"),
    ]
