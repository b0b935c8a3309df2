"""Topic creation against the real broker: the worker creates Faust's internal topics up
front (a changelog Faust creates at start-up can be missing from its consumer's first
metadata, and the first table write then crashes the agent with PartitionsMismatch), with
the shape Faust expects, and refuses a changelog that is not co-partitioned with the inputs."""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from cxstream.kafka.admin import TopicError, ensure_topics, internal_topics, target_reports
from cxstream.config.settings import Settings
from cxstream.kafka.topics import Topics

from .harness import unique_prefix


def _settings(bootstrap: str, prefix: str) -> Settings:
    return Settings.from_env({"CXSTREAM_BROKER": bootstrap, "CXSTREAM_TOPIC_PREFIX": prefix,
                              "CXSTREAM_PARTITIONS": "3"})


async def _cleanup_policy(admin: AIOKafkaAdminClient, topic: str) -> str:
    (resp,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    entries = {e[0]: e[1] for r in resp.resources for e in r[4]}
    return entries["cleanup.policy"]


async def test_the_worker_creates_faust_topics_up_front_and_produce_does_not(
        kafka_bootstrap: str) -> None:
    settings = _settings(kafka_bootstrap, unique_prefix())
    changelog, reports, leader = internal_topics(settings)
    assert changelog == f"{settings.group_id}-state-changelog"
    assert reports == target_reports(settings) == f"{settings.group_id}-target-reports"

    counts = await ensure_topics(settings)  # as `cxstream produce` does
    assert changelog not in counts and leader not in counts and reports not in counts
    counts = await ensure_topics(settings, internal=True)  # as the worker does
    assert counts[changelog] == 3 and counts[leader] == 1 and counts[reports] == 3
    assert all(counts[name] == 3 for name in Topics(settings.topic_prefix).all_external())
    assert await ensure_topics(settings, internal=True) == counts  # idempotent

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        assert await _cleanup_policy(admin, changelog) == "compact"
        assert await _cleanup_policy(admin, leader) == "delete"
        assert await _cleanup_policy(admin, reports) == "delete"
    finally:
        await admin.close()


async def test_a_changelog_not_co_partitioned_with_the_inputs_is_refused(
        kafka_bootstrap: str) -> None:
    settings = _settings(kafka_bootstrap, unique_prefix())
    changelog = f"{settings.group_id}-state-changelog"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(changelog, 5, 1)])
    finally:
        await admin.close()
    with pytest.raises(TopicError, match="has 5 partitions but the input topics have 3.*CXSTREAM_APP_ID"):
        await ensure_topics(settings, internal=True)
