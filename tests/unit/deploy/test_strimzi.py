"""deploy/k8s/strimzi: one KafkaTopic per topic cxstream uses, shaped as cxstream itself would
create it, for the settings of the ConfigMap. Topic names, partitions and configs come from the
code (cxstream.kafka.topics, cxstream.kafka.admin.topic_configs) and from the Faust app cxstream builds
(its table changelog and leader topic), never from a list kept here."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from cxstream.kafka.admin import topic_configs
from cxstream.config.settings import Settings
from cxstream.kafka.topics import INPUTS, Topics

from .promql_names import DEPLOY

K8S = DEPLOY / "k8s"
STRIMZI = K8S / "strimzi"
CONFIG = yaml.safe_load((K8S / "configmap.yaml").read_text())["data"]
KUSTOMIZATION = yaml.safe_load((STRIMZI / "kustomization.yaml").read_text())
TOPICS: list[dict[str, Any]] = [
    d for res in KUSTOMIZATION["resources"]
    for d in yaml.safe_load_all((STRIMZI / res).read_text()) if d is not None
]
BY_NAME = {t["spec"]["topicName"]: t for t in TOPICS}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every topic a worker with the ConfigMap's settings uses: partitions, replicas, configs."""
    from cxstream.app import create_app
    from cxstream.kafka.admin import internal_topics, target_reports

    settings = Settings.from_env(CONFIG, data_dir=tmp_path_factory.mktemp("data"), store="memory://")
    topics = Topics(settings.topic_prefix)
    want = {name: {"partitions": settings.partitions, "replicas": settings.replication,
                   "config": topic_configs(settings, name)} for name in topics.all_external()}
    app = create_app(settings)
    internal = [table.changelog_topic for table in app.tables.values()]
    internal.append(app._leader_assignor._leader_topic)  # Faust's `<id>-__assignor-__leader`
    for topic in internal:
        (name,) = topic.topics
        config = {}
        policy = {"compact"} if topic.compacting else set()
        policy |= {"delete"} if topic.deleting else set()
        if policy:
            config["cleanup.policy"] = ",".join(sorted(policy))
        if topic.retention:
            config["retention.ms"] = str(int(topic.retention * 1000))
        want[name] = {"partitions": topic.partitions or settings.partitions,
                      "replicas": topic.replicas or app.conf.topic_replication_factor,
                      "config": config}
    # cxstream's own internal topic (not Faust's): as `ensure_topics` creates it.
    partitions, config = internal_topics(settings)[target_reports(settings)]
    want[target_reports(settings)] = {"partitions": partitions,
                                      "replicas": settings.replication, "config": config}
    return want


def test_names_follow_the_configmap_prefix_and_app_id(expected: dict[str, dict[str, Any]]) -> None:
    group = f"{CONFIG['CXSTREAM_TOPIC_PREFIX']}{CONFIG['CXSTREAM_APP_ID']}"
    assert f"{group}-state-changelog" in expected
    assert f"{group}-__assignor-__leader" in expected
    assert all(name.startswith(CONFIG["CXSTREAM_TOPIC_PREFIX"]) for name in expected)


def test_one_kafkatopic_per_topic_and_no_other(expected: dict[str, dict[str, Any]]) -> None:
    for topic in TOPICS:
        assert topic["apiVersion"] == "kafka.strimzi.io/v1beta2" and topic["kind"] == "KafkaTopic"
        assert DNS_SUBDOMAIN.match(topic["metadata"]["name"]), topic["metadata"]["name"]
    assert len(BY_NAME) == len(TOPICS), "two KafkaTopics for one topic"
    assert len({t["metadata"]["name"] for t in TOPICS}) == len(TOPICS)
    assert sorted(BY_NAME) == sorted(expected)


def test_partitions_replicas_and_configs_match_what_cxstream_creates(
        expected: dict[str, dict[str, Any]]) -> None:
    for name, want in expected.items():
        spec = BY_NAME[name]["spec"]
        assert spec["partitions"] == want["partitions"], name
        assert spec["replicas"] == want["replicas"], name
        config = {k: str(v) for k, v in (spec.get("config") or {}).items()}
        policy = config.get("cleanup.policy", "delete")
        assert policy == want["config"].get("cleanup.policy", "delete"), f"{name}: cleanup.policy"
        assert config.get("retention.ms") == want["config"].get("retention.ms"), f"{name}: retention.ms"


def test_state_topics_are_compacted_and_co_partitioned(expected: dict[str, dict[str, Any]]) -> None:
    settings = Settings.from_env(CONFIG)
    topics = Topics(settings.topic_prefix)
    changelog = f"{settings.group_id}-state-changelog"

    def policy(name: str) -> str:
        return str((BY_NAME[name]["spec"].get("config") or {}).get("cleanup.policy", "delete"))

    for name in topics.compacted() | {changelog}:
        assert policy(name) == "compact", name
    for name in {topics.surveys, topics.interactions, topics.alerts, topics.deadletter,
                 topics.notifications_deadletter}:
        assert "compact" not in policy(name), name
    inputs = {BY_NAME[topics.input(short)]["spec"]["partitions"] for short in INPUTS}
    assert inputs == {settings.partitions}, "input topics must be co-partitioned"
    assert BY_NAME[changelog]["spec"]["partitions"] == settings.partitions
    assert BY_NAME[topics.notifications_sent]["spec"]["partitions"] == \
        BY_NAME[topics.alerts]["spec"]["partitions"], "the notifier maps alert partition p to p"
    assert BY_NAME[f"{settings.group_id}-__assignor-__leader"]["spec"]["partitions"] == 1


def test_dead_letters_have_the_configured_retention() -> None:
    settings = Settings.from_env(CONFIG)
    assert settings.deadletter_retention, "dead letters hold personal data: bound their retention"
    topics = Topics(settings.topic_prefix)
    for name in (topics.deadletter, topics.notifications_deadletter):
        retention = BY_NAME[name]["spec"]["config"]["retention.ms"]
        assert int(retention) == settings.deadletter_retention, name


def test_kustomization_labels_the_cluster_and_stays_optional() -> None:
    clusters = [pairs["pairs"]["strimzi.io/cluster"] for pairs in KUSTOMIZATION.get("labels", [])
                if "strimzi.io/cluster" in pairs["pairs"]]
    assert len(clusters) == 1 and clusters[0], "the Topic Operator needs strimzi.io/cluster"
    assert "CHANGE ME" in (STRIMZI / "kustomization.yaml").read_text()
    # The Topic Operator watches the Kafka cluster's namespace, not the workers'.
    assert KUSTOMIZATION["namespace"] != "cxstream"
    base = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert not any("strimzi" in r or "topics" in r for r in base["resources"]), \
        "Strimzi CRDs stay optional: `kubectl apply -k deploy/k8s` must work without them"
    for topic in TOPICS:  # per-resource labels would fight the single place to change it
        assert "strimzi.io/cluster" not in (topic["metadata"].get("labels") or {})


def test_readme_documents_the_strimzi_topics() -> None:
    readme = (DEPLOY.parent / "docs" / "operating" / "deploy.md").read_text()
    section = readme[readme.index("# Deploy and operate"):]
    assert "kubectl apply -k deploy/k8s/strimzi" in section
    assert "`deploy/k8s/strimzi/`" in section

