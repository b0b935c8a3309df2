"""Sending to Kafka until the broker acknowledges, for every record cxstream must not lose
(alerts, dead letters, state writes, the notifier's sent-state and dead letters) — but only
while sending again can succeed.

Why retry at all: while the broker is away, a send fails with a KafkaError; giving up would
drop the record, and an offset commit could then pass the message that produced it. Each
caller keeps its own order of sends; this only waits and sends again.

Why not retry everything: some refusals never change by waiting — a record larger than the
topic's `max.message.bytes`, a principal without the ACL to write, a record the broker finds
malformed. Retrying those looped forever and the partition never moved again, silently. They
raise `PermanentKafkaError` at once, naming the record, the topic and what to change; the
caller dead-letters the input record behind it when there is one, else the worker stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from aiokafka import errors as kerr

from cxstream import metrics

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 10.0
#: How long a topic may stay unknown to the broker before a send to it is given up. A topic
#: being created (or a broker coming back whose metadata lags) is unknown for moments; one
#: that stays unknown this long was deleted or never created, and no wait brings it back.
UNKNOWN_TOPIC_GRACE_S = 120.0

#: What a record is; the `record` label of the retry metrics (a closed list).
RecordKind = Literal["alert", "deadletter", "state", "notification_state",
                     "notification_deadletter", "target_report"]
RECORD_KINDS: tuple[RecordKind, ...] = ("alert", "deadletter", "state", "notification_state",
                                        "notification_deadletter", "target_report")
_NAMES: dict[str, str] = {"alert": "an alert", "deadletter": "a dead letter",
                          "state": "state changelog records",
                          "notification_state": "the notifier's delivery state",
                          "notification_deadletter": "a notification dead letter",
                          "target_report": "a target report"}

#: Errors that say the broker or the path to it is away for now, whatever their `retriable`
#: attribute says (aiokafka marks some of them not retriable because its own loop stops on
#: them; ours waits for the broker to come back).
TRANSIENT: tuple[type[BaseException], ...] = (
    kerr.KafkaConnectionError, kerr.NodeNotReadyError, kerr.KafkaTimeoutError,
    kerr.RequestTimedOutError, kerr.LeaderNotAvailableError, kerr.NotLeaderForPartitionError,
    kerr.BrokerNotAvailableError, kerr.ReplicaNotAvailableError, kerr.KafkaUnavailableError,
    kerr.NoBrokersAvailable, kerr.NotEnoughReplicasError, kerr.NotEnoughReplicasAfterAppendError,
    kerr.KafkaStorageError, kerr.StaleMetadata, kerr.UnknownTopicOrPartitionError,
)
#: Refusals about the record's size: the topic's `max.message.bytes`, the broker's
#: `message.max.bytes` or the producer's `max_request_size`.
TOO_LARGE: tuple[type[BaseException], ...] = (
    kerr.MessageSizeTooLargeError, kerr.RecordListTooLargeError, kerr.RecordTooLargeError)
#: Refusals of the principal's rights.
UNAUTHORIZED: tuple[type[BaseException], ...] = (
    kerr.TopicAuthorizationFailedError, kerr.ClusterAuthorizationFailedError,
    kerr.TransactionalIdAuthorizationFailed, kerr.GroupAuthorizationFailedError,
    kerr.DelegationTokenAuthorizationFailed)
#: Refusals of the credentials or the TLS/SASL setup.
UNAUTHENTICATED: tuple[type[BaseException], ...] = (
    kerr.SaslAuthenticationFailed, kerr.AuthenticationFailedError,
    kerr.AuthenticationMethodNotSupported, kerr.UnsupportedSaslMechanismError,
    kerr.IllegalSaslStateError)
#: Refusals of the record's bytes or timestamp.
MALFORMED: tuple[type[BaseException], ...] = (
    kerr.CorruptRecordException, kerr.InvalidMessageError, kerr.InvalidTimestampError,
    kerr.UnsupportedForMessageFormatError, kerr.UnsupportedCodecError)

Verdict = Literal["retriable", "permanent"]


class PermanentKafkaError(RuntimeError):
    """Kafka refused a record for a reason that sending it again cannot fix. The message is
    one line: the record, the topic, the error's type and what to change. `kind`, `topic`
    and `error` (the aiokafka error's type name) are kept for callers; `too_large` tells a
    caller that a smaller record may still go through."""

    def __init__(self, kind: RecordKind, topic: str, error: BaseException) -> None:
        self.kind, self.topic, self.error = kind, topic, type(error).__name__
        self.too_large = isinstance(error, TOO_LARGE)
        super().__init__(f"Kafka refused {_NAMES[kind]} for topic {topic} with {self.error}, "
                         f"which sending again cannot fix: {fix_for(error, topic)}")


def classify(exc: BaseException) -> Verdict:
    """Whether sending again can succeed after `exc`, a KafkaError of a send.

    Retriable: the broker or the path to it is away for now (`TRANSIENT`), or aiokafka marks
    the error `retriable`. Permanent: every other KafkaError — a size, authorization,
    authentication, format or policy refusal, or anything aiokafka says retrying will not
    change. A topic unknown to the broker is retriable here; `until_acknowledged` gives it
    `UNKNOWN_TOPIC_GRACE_S`."""
    if isinstance(exc, (*TOO_LARGE, *UNAUTHORIZED, *UNAUTHENTICATED, *MALFORMED)):
        return "permanent"
    if isinstance(exc, TRANSIENT) or getattr(exc, "retriable", False):
        return "retriable"
    return "permanent"


def fix_for(exc: BaseException, topic: str) -> str:
    """What an operator changes so that a record refused with `exc` goes through (no record
    content: only the topic and the error's type)."""
    if isinstance(exc, TOO_LARGE):
        return (f"the record is larger than the topic's max.message.bytes (or the broker's "
                f"message.max.bytes); raise max.message.bytes of {topic} to at least 1048588, "
                f"Kafka's default, which cxstream's records stay under (kafka-configs.sh --alter "
                f"--entity-type topics --entity-name {topic} --add-config "
                "max.message.bytes=1048588), then restart the worker")
    if isinstance(exc, kerr.ClusterAuthorizationFailedError):
        return ("the Kafka principal lacks IDEMPOTENT_WRITE on the cluster (needed by "
                "idempotent producers on brokers before 3.0): grant it, see "
                "docs/operating/kafka-security.md#minimal-acls, then restart the worker")
    if isinstance(exc, UNAUTHORIZED):
        return (f"the Kafka principal may not write to {topic}: grant it WRITE and DESCRIBE on "
                "the topic (docs/operating/kafka-security.md#minimal-acls), then restart the "
                "worker")
    if isinstance(exc, UNAUTHENTICATED):
        return ("the broker refused the credentials: check CXSTREAM_SECURITY_PROTOCOL, "
                "CXSTREAM_SASL_* and CXSTREAM_SSL_* (docs/operating/kafka-security.md)")
    if isinstance(exc, kerr.InvalidTimestampError):
        return (f"the record's timestamp is outside what {topic} accepts: set "
                "message.timestamp.type=LogAppendTime on the topic, or widen its "
                "message.timestamp.before.max.ms / after.max.ms, then restart the worker")
    if isinstance(exc, MALFORMED):
        return (f"the broker found the record malformed for {topic}: check the broker's log "
                "and that the broker is Kafka 2.8 or later")
    if isinstance(exc, kerr.UnknownTopicOrPartitionError):
        return (f"the topic {topic} does not exist (deleted, or never created): restart the "
                "worker, which creates the topics it needs, or create it as "
                "docs/concepts/contracts.md describes")
    if isinstance(exc, kerr.PolicyViolationError):
        return f"a broker policy refuses writes to {topic}: see the broker's log"
    return f"see the broker's log about {topic}, fix what it names, then restart the worker"


async def until_acknowledged(attempt: Callable[[], Awaitable[T]], what: str, *,
                             kind: RecordKind, topic: str,
                             first: Awaitable[T] | None = None) -> T:
    """The broker's answer to `first` (a send already under way) or to `attempt()`.

    `attempt` sends the record (or records) of `kind` to `topic` again; `what` names them in
    the log (no customer data). While they fail with a retriable KafkaError (`classify`),
    wait (0.5 s, doubling up to 10 s) and `attempt()` again, counting each repeat in
    `cxstream_kafka_retries_total{record, error}`. A topic unknown to the broker is waited
    for `UNKNOWN_TOPIC_GRACE_S`, then given up as permanent.

    Raises PermanentKafkaError (counted in `cxstream_kafka_send_failures_total{record,
    error}`, logged once as an error with the fix) on the first permanent error: never
    loops on a refusal that waiting cannot change. A send that raises at once (a record
    over the producer's `max_request_size`) is handled like a failed answer. ProducerClosed
    (the worker is stopping) and errors that are not KafkaErrors are raised unchanged."""
    loop = asyncio.get_running_loop()
    delay = FIRST_DELAY_S
    unknown_since: float | None = None
    pending: Awaitable[T] | None = first
    while True:
        try:
            return await (pending if pending is not None else attempt())
        except kerr.ProducerClosed:
            raise
        except kerr.KafkaError as exc:
            error = type(exc).__name__
            if isinstance(exc, kerr.UnknownTopicOrPartitionError):
                unknown_since = loop.time() if unknown_since is None else unknown_since
                gone = loop.time() - unknown_since >= UNKNOWN_TOPIC_GRACE_S
            else:
                gone = False
            if gone or classify(exc) == "permanent":
                metrics.KAFKA_SEND_FAILURES.labels(kind, error).inc()
                failure = PermanentKafkaError(kind, topic, exc)
                log.error("%s: %s", what, failure)
                raise failure from exc
            metrics.KAFKA_RETRIES.labels(kind, error).inc()
            log.warning("%s not acknowledged (%s); sending it again in %.1fs", what, error,
                        delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)
            pending = None
