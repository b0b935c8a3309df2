"""Records cxstream must not lose are sent again while Kafka fails them for a reason waiting
can fix, and given up at once, with the fix named and counted, when it cannot."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from aiokafka import errors as kerr

from cxstream import metrics
from cxstream.kafka import retry
from cxstream.kafka.retry import PermanentKafkaError, classify, until_acknowledged

TOPIC = "cx.alerts"

#: Every error a send can end with that waiting can fix: the broker or its leader away.
RETRIABLE = [
    kerr.KafkaConnectionError, kerr.NodeNotReadyError, kerr.KafkaTimeoutError,
    kerr.RequestTimedOutError, kerr.LeaderNotAvailableError, kerr.NotLeaderForPartitionError,
    kerr.BrokerNotAvailableError, kerr.ReplicaNotAvailableError, kerr.KafkaUnavailableError,
    kerr.NoBrokersAvailable, kerr.NotEnoughReplicasError, kerr.NotEnoughReplicasAfterAppendError,
    kerr.KafkaStorageError, kerr.UnknownTopicOrPartitionError, kerr.CoordinatorNotAvailableError,
    kerr.CoordinatorLoadInProgressError, kerr.NotCoordinatorError, kerr.NotControllerError,
    kerr.StaleMetadata, kerr.TooManyInFlightRequests, kerr.Cancelled,
]
#: Refusals no wait changes, with a word the fix must contain.
PERMANENT = [
    (kerr.MessageSizeTooLargeError, "max.message.bytes"),
    (kerr.RecordListTooLargeError, "max.message.bytes"),
    (kerr.RecordTooLargeError, "max.message.bytes"),
    (kerr.TopicAuthorizationFailedError, "WRITE"),
    (kerr.GroupAuthorizationFailedError, "WRITE"),
    (kerr.TransactionalIdAuthorizationFailed, "WRITE"),
    (kerr.ClusterAuthorizationFailedError, "IDEMPOTENT_WRITE"),
    (kerr.DelegationTokenAuthorizationFailed, "WRITE"),
    (kerr.SaslAuthenticationFailed, "CXSTREAM_SASL_"),
    (kerr.AuthenticationFailedError, "CXSTREAM_SASL_"),
    (kerr.UnsupportedSaslMechanismError, "CXSTREAM_SASL_"),
    (kerr.CorruptRecordException, "malformed"),
    (kerr.InvalidMessageError, "malformed"),
    (kerr.UnsupportedForMessageFormatError, "malformed"),
    (kerr.InvalidTimestampError, "message.timestamp.type"),
    (kerr.PolicyViolationError, "policy"),
    (kerr.InvalidTopicError, "broker's log"),
    (kerr.InvalidRequiredAcksError, "broker's log"),
    (kerr.UnsupportedVersionError, "broker's log"),
    (kerr.OutOfOrderSequenceNumber, "broker's log"),
    (kerr.ProducerFenced, "broker's log"),
]


def count(metric: Any, kind: str, error: str) -> float:
    value = metrics.REGISTRY.get_sample_value(f"{metric._name}_total",  # noqa: SLF001
                                              {"record": kind, "error": error})
    return value or 0.0


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff's waits, taken without waiting."""
    waited: list[float] = []

    async def sleep(s: float) -> None:
        waited.append(s)

    monkeypatch.setattr(retry.asyncio, "sleep", sleep)
    return waited


@pytest.mark.parametrize("error", RETRIABLE, ids=lambda e: e.__name__)
def test_errors_waiting_can_fix_are_retriable(error: type[Exception]) -> None:
    assert classify(error()) == "retriable"


@pytest.mark.parametrize("error,fix", PERMANENT, ids=lambda e: getattr(e, "__name__", ""))
async def test_a_refusal_for_good_fails_at_once_naming_the_fix(
        error: type[Exception], fix: str, waits: list[float]) -> None:
    assert classify(error()) == "permanent"
    attempts = 0

    async def attempt() -> None:
        nonlocal attempts
        attempts += 1
        raise error()

    before = count(metrics.KAFKA_SEND_FAILURES, "alert", error.__name__)
    retried = count(metrics.KAFKA_RETRIES, "alert", error.__name__)
    with pytest.raises(PermanentKafkaError) as info:
        await until_acknowledged(attempt, "alert 1", kind="alert", topic=TOPIC)
    exc = info.value
    assert attempts == 1 and waits == []  # never sent again
    assert (exc.kind, exc.topic, exc.error) == ("alert", TOPIC, error.__name__)
    assert isinstance(exc.__cause__, error)
    assert "\n" not in str(exc) and TOPIC in str(exc) and error.__name__ in str(exc)
    assert fix in str(exc), str(exc)
    assert exc.too_large == (fix == "max.message.bytes")
    assert count(metrics.KAFKA_SEND_FAILURES, "alert", error.__name__) == before + 1
    assert count(metrics.KAFKA_RETRIES, "alert", error.__name__) == retried


def test_every_kafka_error_is_classified_and_the_lists_are_exhaustive() -> None:
    """Every aiokafka error is one or the other; each named above is where it belongs, and
    the retriable ones are exactly the broker-away ones and those aiokafka marks retriable."""
    listed = set(RETRIABLE) | {e for e, _ in PERMANENT}
    for error in vars(kerr).values():
        if inspect.isclass(error) and issubclass(error, kerr.KafkaError):
            verdict = classify(error())
            expected = ("retriable" if issubclass(error, retry.TRANSIENT) or
                        (error.retriable and not issubclass(
                            error, (*retry.TOO_LARGE, *retry.UNAUTHORIZED,
                                    *retry.UNAUTHENTICATED, *retry.MALFORMED)))
                        else "permanent")
            assert verdict == expected, error.__name__
            if error in listed:
                assert (error in RETRIABLE) == (verdict == "retriable"), error.__name__


async def test_sends_again_until_acknowledged_waiting_longer_each_time(
        waits: list[float]) -> None:
    refusals = 7
    attempts = 0

    async def attempt() -> str:
        nonlocal attempts
        attempts += 1
        if attempts <= refusals:
            raise kerr.KafkaConnectionError()
        return "acked"

    before = count(metrics.KAFKA_RETRIES, "state", "KafkaConnectionError")
    first: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    first.set_exception(kerr.KafkaConnectionError())  # the send already under way was refused
    assert await until_acknowledged(attempt, "a record", kind="state", topic=TOPIC,
                                    first=first) == "acked"
    assert attempts == refusals + 1
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert count(metrics.KAFKA_RETRIES, "state", "KafkaConnectionError") == before + 8


async def test_a_send_that_raises_at_once_is_classified_like_a_failed_answer(
        waits: list[float]) -> None:
    """aiokafka's `send` raises MessageSizeTooLargeError itself, before any round trip,
    for a record over the producer's max_request_size."""
    class Producer:
        calls = 0

        async def send(self) -> asyncio.Future[None]:
            self.calls += 1
            raise kerr.MessageSizeTooLargeError("over max_request_size")

    producer = Producer()

    async def attempt() -> None:
        await (await producer.send())

    with pytest.raises(PermanentKafkaError, match="max.message.bytes"):
        await until_acknowledged(attempt, "dead letter", kind="deadletter", topic=TOPIC)
    assert producer.calls == 1 and waits == []


async def test_a_topic_unknown_past_the_grace_is_given_up(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Unknown for moments (being created, a broker coming back): sent again. Unknown for
    the whole grace since the first such answer: permanent, whatever came before it."""
    monkeypatch.setattr(retry, "FIRST_DELAY_S", 0.001)
    monkeypatch.setattr(retry, "MAX_DELAY_S", 0.001)
    monkeypatch.setattr(retry, "UNKNOWN_TOPIC_GRACE_S", 0.05)
    answers: list[Exception] = [kerr.KafkaConnectionError()] * 3
    loop = asyncio.get_running_loop()
    started: float | None = None

    async def attempt() -> None:
        nonlocal started
        if answers:
            raise answers.pop()
        started = loop.time() if started is None else started
        raise kerr.UnknownTopicOrPartitionError()

    with pytest.raises(PermanentKafkaError, match="does not exist") as info:
        await until_acknowledged(attempt, "a record", kind="notification_state", topic=TOPIC)
    assert info.value.error == "UnknownTopicOrPartitionError"
    assert started is not None and loop.time() - started >= 0.05

    created_after = 3  # unknown a few times, then created: acknowledged

    async def eventually() -> str:
        nonlocal created_after
        created_after -= 1
        if created_after >= 0:
            raise kerr.UnknownTopicOrPartitionError()
        return "acked"

    monkeypatch.setattr(retry, "UNKNOWN_TOPIC_GRACE_S", 60.0)
    assert await until_acknowledged(eventually, "a record", kind="notification_state",
                                    topic=TOPIC) == "acked"


async def test_a_closed_producer_and_other_errors_are_raised_unchanged(
        waits: list[float]) -> None:
    for error in (kerr.ProducerClosed(), ValueError("too big")):
        async def attempt(error: Exception = error) -> None:
            raise error

        with pytest.raises(type(error)):
            await until_acknowledged(attempt, "a record", kind="alert", topic=TOPIC)
    assert waits == []


def test_metric_labels_are_bounded() -> None:
    """`record` comes from a closed list, `error` from aiokafka's error classes."""
    assert set(retry.RECORD_KINDS) == set(retry._NAMES)  # noqa: SLF001
    assert metrics.KAFKA_RETRIES._labelnames == ("record", "error")  # noqa: SLF001
    assert metrics.KAFKA_SEND_FAILURES._labelnames == ("record", "error")  # noqa: SLF001
