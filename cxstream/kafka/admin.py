"""Topic creation: cxstream creates the topics it needs, with the right shape, before use.

The input and output topics must exist with co-partitioned input topics, so the worker and
`cxstream produce` call `ensure_topics`. The worker also creates Faust's internal topics up
front: created by Faust at start-up, a fresh changelog can be missing from its consumer's
first metadata, and the first table write then fails (`PartitionsMismatch`, "changelog has
0 partitions") and keeps the agent crashing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from cxstream.kafka.partitions import copartitioning_problem
from cxstream.kafka.security import KafkaAuthError, client_kwargs, connection_problem, describe
from cxstream.config.settings import Settings
from cxstream.kafka.topics import STATE_TABLE, Topics

log = logging.getLogger(__name__)


class TopicError(RuntimeError):
    """The topics exist but cannot be used as they are; the message says what to change."""


def state_changelog(settings: Settings) -> str:
    """Name Faust gives the state table's changelog topic."""
    return f"{settings.group_id}-{STATE_TABLE}-changelog"


def target_reports(settings: Settings) -> str:
    """The worker group's internal topic of segment target reports (`cxstream.core.targets`):
    co-partitioned with the inputs, so report partition *q* and its state go with input
    partition *q*."""
    return f"{settings.group_id}-target-reports"


#: Retention of the target reports: long enough for a worker down over a weekend; a report
#: is read within seconds, and one lost to retention only leaves its boundary undecided.
TARGET_REPORTS_RETENTION_MS = 7 * 86_400_000


def internal_topics(settings: Settings) -> dict[str, tuple[int, dict[str, str]]]:
    """The worker's own topics, with their partition counts and configs: Faust's (the state
    table's changelog, co-partitioned with the inputs and compacted, and the assignor's
    leader topic) and the target reports (co-partitioned, deleted after a week)."""
    return {state_changelog(settings): (settings.partitions, {"cleanup.policy": "compact"}),
            target_reports(settings): (settings.partitions, {
                "cleanup.policy": "delete",
                "retention.ms": str(TARGET_REPORTS_RETENTION_MS)}),
            f"{settings.group_id}-__assignor-__leader": (1, {})}


async def ensure_topics(settings: Settings, timeout_s: float = 60.0,
                        internal: bool = False) -> dict[str, int]:
    """Create the missing external topics (and, with `internal`, Faust's: the worker);
    return each topic's partition count.

    Fails with TopicError when the input topics, or (with `internal`) the state changelog
    or CXSTREAM_PARTITIONS, are not co-partitioned (same partition count): per-customer
    state would then be split across workers. That is checked before anything is created,
    on the counts the topics would have, and again after.
    """
    topics = Topics(settings.topic_prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, request_timeout_ms=15000,
                                **client_kwargs(settings))
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await admin.start()
            break
        except KafkaError as exc:
            problem = await connection_problem(settings)  # wrong password etc.: no retry helps
            if problem:
                raise KafkaAuthError(problem) from None
            if asyncio.get_running_loop().time() > deadline:
                how = "" if settings.security_protocol == "PLAINTEXT" else \
                    f" over {describe(settings)} (check the CXSTREAM_SECURITY_PROTOCOL listener)"
                raise TopicError(
                    f"cannot reach Kafka at {settings.bootstrap}{how} ({type(exc).__name__}); "
                    "start a broker (`cxstream broker start`) or set CXSTREAM_BROKER") from exc
            await asyncio.sleep(1.0)
    try:
        existing = await _partition_counts(admin)
        shapes = {name: (settings.partitions, topic_configs(settings, name))
                  for name in topics.all_external()}
        if internal:
            shapes.update(internal_topics(settings))
        missing = [name for name in shapes if name not in existing]
        # Checked before anything is created, on the counts the topics will have: a wrong
        # shape is refused without leaving a changelog of the wrong size behind.
        check_copartitioned(settings, {**{n: shapes[n][0] for n in missing}, **existing},
                             internal)
        if missing:
            new = [NewTopic(name, shapes[name][0], settings.replication,
                            topic_configs=shapes[name][1]) for name in missing]
            response = await admin.create_topics(new, timeout_ms=30000)
            errors = {
                err[0]: f"{err[1]} {err[2] if len(err) > 2 else ''}".strip()
                for err in getattr(response, "topic_errors", ())
                if err[1] not in (0, TopicAlreadyExistsError.errno)  # exists: another worker won
            }
            if errors:
                raise TopicError(f"could not create topics: {errors}; check the broker's log "
                                 "and ACLs")
            for name in missing:
                log.info("created topic %s (%d partitions)", name, settings.partitions)
            for _ in range(100):
                existing = await _partition_counts(admin)
                if all(name in existing for name in missing):
                    break
                await asyncio.sleep(0.2)
            check_copartitioned(settings, existing, internal)  # another client may have won
        return {name: existing[name] for name in shapes if name in existing}
    finally:
        await admin.close()


def check_copartitioned(settings: Settings, counts: Mapping[str, int | None],
                        internal: bool) -> None:
    """Raise TopicError, naming the topics, their counts (`counts`: partitions by topic
    name, None for a missing topic) and the fix, unless the input topics are co-partitioned;
    with `internal` (the worker), the state changelog and CXSTREAM_PARTITIONS must match them
    too (`cxstream.kafka.partitions.copartitioning_problem`)."""
    topics = Topics(settings.topic_prefix)
    inputs = (topics.surveys, topics.interactions, topics.customers)
    problem = copartitioning_problem(
        counts, inputs, changelog=state_changelog(settings) if internal else None,
        configured=settings.partitions if internal else None)
    if problem is None and internal:
        problem = copartitioning_problem(counts, inputs, changelog=target_reports(settings))
    if problem:
        raise TopicError(problem)


def topic_configs(settings: Settings, name: str) -> dict[str, str]:
    """Configs of a topic cxstream creates: compaction for state topics, and the configured
    retention for the dead-letter topics (they keep raw payloads, i.e. personal data)."""
    topics = Topics(settings.topic_prefix)
    configs: dict[str, str] = {}
    if name in topics.compacted():
        configs["cleanup.policy"] = "compact"
    dead_letters = (topics.deadletter, topics.notifications_deadletter)
    if name in dead_letters and settings.deadletter_retention:
        configs["retention.ms"] = str(settings.deadletter_retention)
    return configs


async def _partition_counts(admin: AIOKafkaAdminClient) -> dict[str, int]:
    described = await admin.describe_topics(await admin.list_topics())
    return {d["topic"]: len(d["partitions"]) for d in described if not d.get("error_code")}
