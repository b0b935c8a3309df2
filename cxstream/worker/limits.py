"""Every record the worker writes fits its topic: state entries, alerts and dead letters are
checked against the topic's `max.message.bytes` before they are sent.

Why: the broker refuses a larger record for good, and a record that can never be written
stops its partition. State entries are bounded where they are planned
(`cxstream.core.step`: a message that would make one too large is dead-lettered as
`entry_too_large`); the changelog writer checks again before sending
(`cxstream.worker.changelog`). What the planner cannot see is fitted here: a dead letter's
copy of the payload is cut shorter, and an alert's recent interactions are left out, oldest
first, until the record fits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import orjson

from cxstream.core.alert import alert_key
from cxstream.core.deadletter import MAX_KEY_BYTES, MAX_PAYLOAD_BYTES, dead_letter
from cxstream.core.errors import Rejection
from cxstream.core.step import DEFAULT_MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

#: Bytes a record takes besides its key, value and headers, at most: the record batch's
#: header (61) and the record's own lengths, offset and time.
RECORD_OVERHEAD = 128


@dataclass(slots=True)
class Limits:
    """`max.message.bytes` per topic (`cxstream.kafka.limits`); Kafka's default for a topic
    not read (yet)."""

    by_topic: dict[str, int] = field(default_factory=dict)

    def of(self, topic: str) -> int:
        return self.by_topic.get(topic, DEFAULT_MAX_MESSAGE_BYTES)


def record_size(key: bytes | None, value: bytes | None,
                headers: list[tuple[str, bytes]] | None = None) -> int:
    """Bytes the record takes in a record batch of its own, at most."""
    size = RECORD_OVERHEAD + len(key or b"") + len(value or b"")
    for name, header in headers or ():
        size += len(name.encode()) + len(header) + 10
    return size


def fitted_dead_letter(rejection: Rejection, msg: Any, now_ms: int,
                       max_bytes: int) -> tuple[bytes | None, bytes]:
    """The dead letter of `msg` as (key, value), its copy of the payload cut short enough
    for a record of at most `max_bytes` (the dead-letter topic's max.message.bytes); the
    document then says so (`payload_truncated`, with the original's size and SHA-256)."""
    key = msg.key if msg.key is None else msg.key[:MAX_KEY_BYTES]
    keep = MAX_PAYLOAD_BYTES
    while True:
        doc = dead_letter(rejection, topic=msg.topic, partition=msg.partition,
                          offset=msg.offset, key=msg.key, payload=msg.value, now_ms=now_ms,
                          max_payload_bytes=keep)
        value = orjson.dumps(doc)
        excess = record_size(key, value) - max_bytes
        if excess <= 0 or keep == 0:
            return key, value
        # base64 takes 4 bytes for 3: cut the copy by what is too much, and a little more.
        keep = max(0, min(keep, len(msg.value or b"")) - excess * 3 // 4 - 64)


def fitted_alert(alert: dict[str, Any], headers: list[tuple[str, bytes]],
                 max_bytes: int) -> tuple[dict[str, Any], bytes]:
    """The alert as sent, and its bytes: `alert` itself when it fits a record of at most
    `max_bytes` (the alert topic's max.message.bytes), else a copy without its oldest recent
    interactions, then without its comment, as far as needed. Decided from the alert alone,
    so a replay sends the same record."""
    key = alert_key(alert)
    value = orjson.dumps(alert)
    if record_size(key, value, headers) <= max_bytes:
        return alert, value
    trimmed = dict(alert)
    journey = list(alert.get("recent_interactions") or ())
    while record_size(key, value, headers) > max_bytes and journey:
        journey.pop()  # newest first: the oldest goes
        trimmed["recent_interactions"] = journey
        value = orjson.dumps(trimmed)
    if record_size(key, value, headers) > max_bytes:
        trimmed["comment"] = None
        value = orjson.dumps(trimmed)
    if record_size(key, value, headers) > max_bytes:
        raise ValueError(f"an alert of {len(value)} bytes without its context does not fit the "
                         f"alert topic's max.message.bytes ({max_bytes}): raise it")
    log.warning("alert %s did not fit the alert topic's max.message.bytes (%d): sent without "
                "some of its context (its oldest recent interactions, or its comment); raise "
                "the topic's max.message.bytes or lower CXSTREAM_JOURNEY_LENGTH",
                alert["alert_id"], max_bytes)
    return trimmed, value
