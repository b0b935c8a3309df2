"""One typed settings object, read from ``CXSTREAM_*`` environment variables.

Every variable is declared once in ``SETTINGS`` (name, default, help); the README's
configuration table is checked against this list by a unit test. Faust itself is given an
empty environment, so unprefixed variables such as ``WEB_PORT`` can never leak into it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

from cxstream.core.windows import Window, parse_duration, parse_windows

PREFIX = "CXSTREAM_"


class SettingsError(ValueError):
    """A setting has a value cxstream cannot use; the message names the variable and the fix."""


def _bool(raw: str) -> bool:
    low = raw.strip().lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true/false")


def _pos_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("expected an integer >= 1")
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 < value < 65536:
        raise ValueError("expected a TCP port 1..65535")
    return value


def _seconds(raw: str) -> float:
    return parse_duration(raw) / 1000 if raw[-1:].isalpha() else float(raw)


def _broker(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ValueError("expected host:port[,host:port...]")
    return value if "://" in value else f"kafka://{value}"


def _store(raw: str) -> str:
    value = raw.strip()
    if value not in {"memory://", "rocksdb://"}:
        raise ValueError("expected memory:// or rocksdb://")
    return value


def _dimensions(raw: str) -> frozenset[str] | None:
    names = frozenset(part.strip() for part in raw.split(",") if part.strip())
    return names or None


@dataclass(frozen=True, slots=True)
class Spec:
    """One documented setting: the environment variable, its parser and its help text."""

    attr: str
    default: str
    parse: Callable[[str], Any]
    help: str

    @property
    def env(self) -> str:
        return PREFIX + self.attr.upper()


SETTINGS: tuple[Spec, ...] = (
    Spec("broker", "kafka://127.0.0.1:9092", _broker,
         "Kafka bootstrap servers (`host:port`, comma-separated; `kafka://` optional)."),
    Spec("topic_prefix", "cx.", str,
         "Prefix of every topic, the consumer group and internal (changelog) topics; two "
         "deployments with different prefixes never mix."),
    Spec("app_id", "cxstream", str, "Application id; the consumer group is `<prefix><app_id>`."),
    Spec("partitions", "4", _pos_int,
         "Partitions of the topics cxstream creates (inputs must be co-partitioned: same count)."),
    Spec("replication", "1", _pos_int, "Replication factor of the topics cxstream creates."),
    Spec("web_bind", "127.0.0.1", str,
         "Address the worker's HTTP server binds to (`0.0.0.0` to expose it, e.g. in a container)."),
    Spec("web_port", "6066", _port, "Port of the worker's HTTP server (`/healthz`, `/readyz`, API)."),
    Spec("web_host", "", str,
         "Host name other workers use to reach this one (query routing); default: `web_bind`, "
         "or the machine's host name when binding 0.0.0.0."),
    Spec("data_dir", ".cxstream", Path,
         "Local state: the worker's table store and the local broker's data (`<dir>/kafka`)."),
    Spec("store", "memory://", _store,
         "Table store: `memory://` (rebuilt from the changelog on start) or `rocksdb://` "
         "(needs the `rocksdb` extra; recommended in production)."),
    Spec("windows", "1h,24h,7d,30d", parse_windows, "Rolling windows reported per segment."),
    Spec("grace", "1h", parse_duration,
         "Extra lateness accepted beyond the largest window before a response is `too_late`."),
    Spec("segment_dimensions", "", _dimensions,
         "Segment dimensions that count (comma-separated, e.g. `plan,region,touchpoint`); empty = all."),
    Spec("segment_value_cap", "50", _pos_int,
         "Distinct values kept per dimension (per partition); further values fold into `<dim>:other`."),
    Spec("min_responses", "30", _pos_int, "Below this many responses a score is flagged `low_sample`."),
    Spec("journey_length", "10", _pos_int, "Recent interactions kept per customer as alert context."),
    Spec("session_timeout", "30", _seconds,
         "Kafka consumer session timeout (seconds). Shorter: a killed worker's partitions move "
         "sooner; longer: fewer spurious rebalances on slow hosts or long GC pauses."),
    Spec("notify_config", "", str,
         "Path of the notification routing file (TOML, see Notifications); empty: no notifications."),
    Spec("log_level", "info", str, "Worker log level: crit, error, warn, info or debug."),
)


@dataclass(frozen=True, slots=True)
class Settings:
    """The whole configuration of one cxstream process (see the README table)."""

    broker: str
    topic_prefix: str
    app_id: str
    partitions: int
    replication: int
    web_bind: str
    web_port: int
    web_host: str
    data_dir: Path
    store: str
    windows: tuple[Window, ...]
    grace: int
    segment_dimensions: frozenset[str] | None
    segment_value_cap: int
    min_responses: int
    journey_length: int
    session_timeout: float
    notify_config: str
    log_level: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Read every ``CXSTREAM_*`` variable; a bad value raises SettingsError naming it."""
        source = os.environ if env is None else env
        known = {spec.env for spec in SETTINGS}
        unknown = sorted(k for k in source if k.startswith(PREFIX) and k not in known
                         and k not in _NON_SETTING_VARS)
        if unknown:
            raise SettingsError(
                f"unknown setting(s) {', '.join(unknown)}; see the configuration table in README.md"
            )
        values: dict[str, Any] = {}
        for spec in SETTINGS:
            raw = source.get(spec.env, spec.default)
            try:
                values[spec.attr] = spec.parse(raw)
            except (ValueError, TypeError) as exc:
                raise SettingsError(
                    f"{spec.env}={raw!r} is not valid: {exc}. {spec.help}"
                ) from None
        values.update(overrides)
        if not values["web_host"]:
            bind = values["web_bind"]
            values["web_host"] = bind if bind not in {"0.0.0.0", "::"} else _hostname()
        return cls(**values)

    @property
    def group_id(self) -> str:
        """Consumer group and Faust app id, namespaced by the topic prefix."""
        return f"{self.topic_prefix}{self.app_id}"

    @property
    def bootstrap(self) -> str:
        """Bootstrap servers as plain ``host:port[,host:port]`` for aiokafka clients."""
        return ",".join(part.split("://", 1)[-1] for part in self.broker.split(","))

    @property
    def horizon_ms(self) -> int:
        """Largest window + grace: older responses can no longer change any window."""
        return max(w.ms for w in self.windows) + self.grace

    def window(self, name: str) -> Window | None:
        return next((w for w in self.windows if w.name == name), None)


#: Variables read elsewhere that are not worker settings (the test suite's broker override).
_NON_SETTING_VARS = frozenset({"CXSTREAM_TEST_BROKER"})


def _hostname() -> str:
    import socket

    return socket.gethostname()


def setting_names() -> list[str]:
    """All documented variable names, in table order (used by the README check)."""
    return [spec.env for spec in SETTINGS]


assert {f.name for f in fields(Settings)} - {"extra"} == {s.attr for s in SETTINGS}
