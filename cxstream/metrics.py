"""Every Prometheus metric cxstream exports, defined once.

Counters are per process and monotonic; with one scrape target per worker,
``sum(rate(...))`` across workers is correct. Labels are bounded: topics, outcomes and error
codes come from closed lists; dimensions and their values are capped per partition
(`CXSTREAM_MAX_DIMENSIONS`, `CXSTREAM_SEGMENT_VALUE_CAP`), and segment labels per metric and
window (`CXSTREAM_METRIC_SEGMENTS_MAX`); windows and partitions are configured.

Metrics updated as things happen are registered below. Metrics read from the live worker at
each scrape (segment counts and scores, consumer lag, recovery, assignment) are declared in
`SCRAPED` and collected by `cxstream.api.collector`, so they can never be stale.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from cxstream import __version__
from cxstream.core.timefmt import parse_rfc3339

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
    "Accepted survey responses, by metric (`survey`), survey program and NPS category (`none` "
    "for CSAT/CES).",
    ["survey", "program", "category"],
    registry=REGISTRY,
)
ALERTS = Counter(
    "cxstream_alerts_total",
    "Alerts produced to the alert topic, by kind (detractor, recovered, promoter, passive, "
    "at_risk, below_target, back_on_target, segment_shift), survey program (of the answer "
    "that caused a turn; of the target) and priority (urgent, high, normal, low; `none` for "
    "segment alerts).",
    ["kind", "program", "priority"],
    registry=REGISTRY,
)
NOTIFICATIONS = Counter(
    "cxstream_notifications_total",
    "Notification outcomes by channel (`-` when no channel is involved): delivered, retried, "
    "failed (dead-lettered), suppressed (cooldown), duplicate, unrouted, skipped (kind not notified).",
    ["channel", "outcome"],
    registry=REGISTRY,
)
NOTIFICATIONS_FAILED = Counter(
    "cxstream_notifications_failed_total",
    "Notifications that failed for good (each also on the notification dead-letter topic), by "
    "channel (`-`: the alert record itself could not be handled) and reason: timeout, refused, "
    "http_error, smtp_error, connection, bad_alert, error.",
    ["channel", "reason"],
    registry=REGISTRY,
)
#: Reasons of `NOTIFIER_ERRORS` (a closed list).
NOTIFIER_ERROR_REASONS = ("commit_failed", "kafka", "error")
NOTIFIER_ERRORS = Counter(
    "cxstream_notifier_errors_total",
    "Failures of the notifier's own loop (not of a delivery), by reason: commit_failed (the "
    "group refused an offset commit after a rebalance; the loop goes on and the alerts are "
    "handled again, at least once), kafka and error (the loop stopped and restarts after a "
    "backoff; the worker keeps running).",
    ["reason"],
    registry=REGISTRY,
)
for _reason in NOTIFIER_ERROR_REASONS:  # every series exists from the start
    NOTIFIER_ERRORS.labels(_reason)
NOTIFIER_QUEUED = Gauge(
    "cxstream_notifier_queued_alerts",
    "Alerts the notifier has read from the alert topic and not yet handled (at most the "
    "routing file's queue_size per alert partition).",
    registry=REGISTRY,
)
SEGMENT_FOLDS = Counter(
    "cxstream_segment_values_folded_total",
    "Responses whose value for a dimension was folded into `<dimension>:other` by the value cap.",
    ["dimension"],
    registry=REGISTRY,
)
CHECK_REPORTS = Counter(
    "cxstream_check_reports_total",
    "Target and trend report records read at the owned report partitions, by outcome: "
    "accepted, duplicate and replayed (repeats), deadlettered, ignored (checks off).",
    ["outcome"],
    registry=REGISTRY,
)
TARGET_PENDING = Gauge(
    "cxstream_target_pending_boundaries",
    "Target windows waiting for the reports of some input partition before they are decided, "
    "per owned report partition: a partition without responses holds them back.",
    ["partition"],
    registry=REGISTRY,
)
STREAM_TIME = Gauge(
    "cxstream_stream_time_seconds",
    "Highest survey occurred_at seen, per owned input partition (Unix seconds).",
    ["partition"],
    registry=REGISTRY,
)
OFFSET_GAPS = Counter(
    "cxstream_offset_gaps_total",
    "Holes found below acknowledged input offsets: messages fetched but never processed, "
    "which stop the committed offset (each is also logged as an error). Should stay 0.",
    ["topic"],
    registry=REGISTRY,
)

RECOVERY_STALLS = Counter(
    "cxstream_recovery_stalls_total",
    "Changelog partitions that received nothing for 15 s during table recovery while behind "
    "their end, and were read again from the next offset needed (`cxstream.worker.recovery_watch`; each is "
    "also logged as a warning). Should stay 0.",
    registry=REGISTRY,
)
KAFKA_RETRIES = Counter(
    "cxstream_kafka_retries_total",
    "Records sent again after Kafka failed them with an error that waiting can fix (broker "
    "away, leader moving, timeout), by record (alert, deadletter, state, notification_state, "
    "notification_deadletter) and the error's type (`cxstream.kafka.retry`).",
    ["record", "error"],
    registry=REGISTRY,
)
KAFKA_SEND_FAILURES = Counter(
    "cxstream_kafka_send_failures_total",
    "Records Kafka refused for a reason sending again cannot fix (too large, not authorized, "
    "malformed, topic gone), by record and the error's type; each is logged as an error "
    "naming the fix, and the input behind it is dead-lettered or the worker stops. Should "
    "stay 0.",
    ["record", "error"],
    registry=REGISTRY,
)

ALERT_KINDS = ("detractor", "recovered", "promoter", "passive", "at_risk")
ALERT_DELAY_FROM_EVENT = Histogram(
    "cxstream_alert_delay_from_event_seconds",
    "Seconds from the response's occurred_at to the alert's acknowledgement by the broker, by "
    "kind; replays of old data land in the day buckets.",
    ["kind"],
    buckets=(1, 5, 15, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400,
             2 * 86400, 3 * 86400, 7 * 86400, 14 * 86400, 31 * 86400),
    registry=REGISTRY,
)
ALERT_DELAY_FROM_RECEIPT = Histogram(
    "cxstream_alert_delay_from_receipt_seconds",
    "Seconds from the worker's receipt of the response (consumer fetch) to the alert's "
    "acknowledgement by the broker, by kind.",
    ["kind"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
for _kind in ALERT_KINDS:  # both series exist from the start, so rate() has a baseline
    ALERT_DELAY_FROM_EVENT.labels(_kind)
    ALERT_DELAY_FROM_RECEIPT.labels(_kind)
BUILD_INFO = Gauge(
    "cxstream_build_info",
    "Always 1; the label carries the cxstream version of this worker.",
    ["version"],
    registry=REGISTRY,
)
BUILD_INFO.labels(__version__).set(1)


def alert_acknowledged(alert: dict[str, Any], received_monotonic: float | None) -> None:
    """Observe an alert's delays right after the broker acknowledged it: from its response's
    `occurred_at` (wall clock) and, when known, from the message's receipt by this worker
    (`time.monotonic()` at fetch). Clock skew never gives a negative delay."""
    kind = alert["kind"]
    # A target alert has no occurred_at: it is about a window, not one answer.
    occurred_ms = parse_rfc3339(alert.get("occurred_at"))
    if occurred_ms is not None:
        ALERT_DELAY_FROM_EVENT.labels(kind).observe(max(0.0, time.time() - occurred_ms / 1000))
    if received_monotonic is not None:
        ALERT_DELAY_FROM_RECEIPT.labels(kind).observe(
            max(0.0, time.monotonic() - received_monotonic))


@dataclass(frozen=True, slots=True)
class Scraped:
    """A gauge computed at scrape time by `cxstream.api.collector`."""

    name: str
    labels: tuple[str, ...]
    help: str


_SEG = ("segment", "window")
_PER_WORKER = (" Per worker, from its owned partitions only: exact with one worker; aggregate "
               "with the recording rules (sums of the count gauges).")
#: Every scrape-time metric, in exposition order (all gauges).
SCRAPED: tuple[Scraped, ...] = (
    Scraped("cxstream_segment_nps_promoters", _SEG,
            "NPS promoters (9-10) in the window, from this worker's owned partitions "
            "(additive: sum by (segment, window) across workers)."),
    Scraped("cxstream_segment_nps_passives", _SEG,
            "NPS passives (7-8) in the window, from this worker's owned partitions (additive)."),
    Scraped("cxstream_segment_nps_detractors", _SEG,
            "NPS detractors (0-6) in the window, from this worker's owned partitions (additive)."),
    Scraped("cxstream_segment_nps_responses", _SEG,
            "NPS responses in the window, from this worker's owned partitions (additive)."),
    Scraped("cxstream_segment_csat_responses", _SEG,
            "CSAT responses in the window, from this worker's owned partitions (additive)."),
    Scraped("cxstream_segment_csat_satisfied", _SEG,
            "CSAT responses of 4 or 5 in the window, from this worker's owned partitions "
            "(additive)."),
    Scraped("cxstream_segment_ces_responses", _SEG,
            "CES responses in the window, from this worker's owned partitions (additive)."),
    Scraped("cxstream_segment_ces_effort_points", _SEG,
            "Sum of the CES scores (1-5 effort points) in the window, from this worker's owned "
            "partitions (additive; mean = points / responses)."),
    Scraped("cxstream_segment_ces_high_effort", _SEG,
            "CES responses of 4 or 5 in the window, from this worker's owned partitions "
            "(additive)."),
    Scraped("cxstream_segment_nps", _SEG,
            "NPS score -100..100 in the window; only with >= 1 NPS response." + _PER_WORKER),
    Scraped("cxstream_segment_csat_percent", _SEG,
            "CSAT score 0..100 (% satisfied) in the window; only with >= 1 CSAT response."
            + _PER_WORKER),
    Scraped("cxstream_segment_ces_effort_mean", _SEG,
            "CES mean effort 1..5 in the window; only with >= 1 CES response." + _PER_WORKER),
    Scraped("cxstream_segment_nps_change", _SEG,
            "Change of the segment's NPS (points) in a trend window against the window before "
            "it, as decided at the last check (CXSTREAM_TREND_WINDOWS); exported by the worker "
            "owning the segment's report partition, so one series per segment across workers."),
    Scraped("cxstream_segment_nps_change_significant", _SEG,
            "1 when that change was significant at CXSTREAM_TREND_LEVEL with enough responses "
            "on both sides, else 0."),
    Scraped("cxstream_metric_segments_summed", ("window",),
            "Segments not exported on their own in the window, past CXSTREAM_METRIC_SEGMENTS_MAX "
            "(those with the fewest responses), summed into segment=\"other\"."),
    Scraped("cxstream_consumer_lag_messages", ("topic", "partition"),
            "Messages not yet processed per owned input partition: high watermark minus the next "
            "offset to process (absent while rebalancing or restoring state)."),
    Scraped("cxstream_recovery_in_progress", (),
            "1 while this worker restores table state from the changelog, else 0."),
    Scraped("cxstream_recovery_remaining_messages", (),
            "Changelog records still to restore for this worker's active partitions (0 when not "
            "recovering)."),
    Scraped("cxstream_assigned_partitions", (),
            "Input partitions this worker owns as active (each covers the surveys, interactions "
            "and customers partition of that number)."),
)
SCRAPED_BY_NAME = {m.name: m for m in SCRAPED}
