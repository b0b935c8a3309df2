"""Every Prometheus metric cxstream exports, defined once.

Counters are per process and monotonic; with one scrape target per worker,
``sum(rate(...))`` across workers is correct. Labels are bounded: topics, outcomes and error
codes come from closed lists.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS = Counter(
    "cxstream_events_total",
    "Input messages handled, by input topic (short name) and outcome "
    "(accepted, duplicate, deadlettered, too_late, replayed).",
    ["topic", "outcome"],
    registry=REGISTRY,
)
DEADLETTERS = Counter(
    "cxstream_deadletters_total",
    "Messages written to the dead-letter topic, by error code.",
    ["code"],
    registry=REGISTRY,
)
RESPONSES = Counter(
    "cxstream_responses_total",
    "Accepted survey responses, by survey kind and NPS category (`none` for CSAT/CES).",
    ["survey", "category"],
    registry=REGISTRY,
)
ALERTS = Counter(
    "cxstream_alerts_total",
    "Alerts produced to the alert topic, by kind (detractor, recovered).",
    ["kind"],
    registry=REGISTRY,
)
NOTIFICATIONS = Counter(
    "cxstream_notifications_total",
    "Notification outcomes by channel (`-` when no channel is involved): delivered, retried, "
    "failed (dead-lettered), suppressed (cooldown), duplicate, unrouted, skipped (kind not notified).",
    ["channel", "outcome"],
    registry=REGISTRY,
)
SEGMENT_FOLDS = Counter(
    "cxstream_segment_values_folded_total",
    "Responses whose value for a dimension was folded into `<dimension>:other` by the value cap.",
    ["dimension"],
    registry=REGISTRY,
)
STREAM_TIME = Gauge(
    "cxstream_stream_time_seconds",
    "Highest survey occurred_at seen, per owned input partition (Unix seconds).",
    ["partition"],
    registry=REGISTRY,
)
