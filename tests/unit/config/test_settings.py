"""Settings: defaults, parsing, clear errors, and the docs' table kept in step with the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cxstream.core.errors import ErrorCode
from cxstream.config.settings import SETTINGS, Settings, SettingsError, setting_names

DOCS = Path(__file__).resolve().parents[3] / "docs"
CONFIGURATION = (DOCS / "operating" / "configuration.md").read_text()
DEAD_LETTERS = (DOCS / "concepts" / "dead-letters.md").read_text()


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.broker == "kafka://127.0.0.1:9092" and s.bootstrap == "127.0.0.1:9092"
    assert s.topic_prefix == "cx." and s.group_id == "cx.cxstream"
    assert s.web_port == 6066 and s.web_bind == "127.0.0.1" and s.web_host == "127.0.0.1"
    assert [w.name for w in s.windows] == ["1h", "24h", "7d", "30d"]
    assert s.horizon_ms == 30 * 86_400_000 + 3_600_000
    assert s.segment_dimensions is None and s.segment_value_cap == 50


def test_values_are_parsed() -> None:
    s = Settings.from_env({"CXSTREAM_BROKER": "a:1,b:2", "CXSTREAM_PARTITIONS": "8",
                           "CXSTREAM_WINDOWS": "15m,1h", "CXSTREAM_GRACE": "10m",
                           "CXSTREAM_SEGMENT_DIMENSIONS": "plan, region",
                           "CXSTREAM_SESSION_TIMEOUT": "6"})
    assert s.bootstrap == "a:1,b:2" and s.partitions == 8
    assert s.horizon_ms == 3_600_000 + 600_000
    assert s.segment_dimensions == frozenset({"plan", "region"})
    assert s.session_timeout == 6.0


@pytest.mark.parametrize("env", [
    {"CXSTREAM_PARTITIONS": "0"}, {"CXSTREAM_WEB_PORT": "http"}, {"CXSTREAM_WINDOWS": "7x"},
    {"CXSTREAM_STORE": "redis://"}, {"CXSTREAM_NOT_A_SETTING": "1"}, {"CXSTREAM_LOG_LEVEL": "loud"},
])
def test_bad_values_name_the_variable(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError) as exc:
        Settings.from_env(env)
    assert next(iter(env)) in str(exc.value)


@pytest.mark.parametrize("raw, level", [("crit", "critical"), ("warn", "warning"), ("INFO", "info")])
def test_log_levels_are_names_the_logging_setup_knows(raw: str, level: str) -> None:
    # The worker hands the level to mode's logging setup, which knows no "crit" or "warn"
    # spelling of its own for every level.
    assert Settings.from_env({"CXSTREAM_LOG_LEVEL": raw}).log_level == level


def test_faust_reads_no_unprefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from cxstream.app import create_app

    monkeypatch.setenv("WEB_PORT", "9999")
    monkeypatch.setenv("BROKER_URL", "kafka://elsewhere:1")
    app = create_app(Settings.from_env({}))
    assert app.conf.web_port == 6066
    assert app.conf.web_bind == "127.0.0.1"
    assert "elsewhere" not in str(app.conf.broker)


def test_readme_configuration_table_matches_settings() -> None:
    rows = re.findall(r"^\| `(CXSTREAM_[A-Z_]+)` \| (.+?) \| (.+?) \|$", CONFIGURATION, flags=re.M)
    assert [name for name, _, _ in rows] == setting_names()
    for (name, default, _), spec in zip(rows, SETTINGS):
        assert default == (f"`{spec.default}`" if spec.default else "(empty)"), name


def test_readme_dead_letter_codes_match_the_enum() -> None:
    section = DEAD_LETTERS.split("# Dead letters", 1)[1].split("\n## ", 1)[0]
    codes = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M)
    assert codes == [c.value for c in ErrorCode]


def test_deadletter_retention_is_given_to_the_dead_letter_topics_only() -> None:
    from cxstream.kafka.admin import topic_configs

    s = Settings.from_env({"CXSTREAM_DEADLETTER_RETENTION": "14d"})
    assert s.deadletter_retention == 14 * 86_400_000
    assert topic_configs(s, "cx.deadletter") == {"retention.ms": str(14 * 86_400_000)}
    assert topic_configs(s, "cx.notifications.deadletter") == {"retention.ms": str(14 * 86_400_000)}
    assert topic_configs(s, "cx.surveys") == {}
    assert topic_configs(s, "cx.customers") == {"cleanup.policy": "compact"}
    assert topic_configs(Settings.from_env({}), "cx.deadletter") == {}
    with pytest.raises(SettingsError, match="CXSTREAM_DEADLETTER_RETENTION"):
        Settings.from_env({"CXSTREAM_DEADLETTER_RETENTION": "forever"})


def test_the_build_and_test_switches_are_not_refused_as_unknown_settings() -> None:
    """CXSTREAM_COMPILE (install time) may stay set where the worker runs, and CI sets
    CXSTREAM_REQUIRE_COMPILED for the whole test session; any other unknown CXSTREAM_
    variable is still refused."""
    env = {"CXSTREAM_COMPILE": "0", "CXSTREAM_REQUIRE_COMPILED": "1",
           "CXSTREAM_TEST_BROKER": "127.0.0.1:9092"}
    assert Settings.from_env(env).partitions == Settings.from_env({}).partitions
    with pytest.raises(SettingsError, match="CXSTREAM_COMPILED"):
        Settings.from_env({**env, "CXSTREAM_COMPILED": "1"})
