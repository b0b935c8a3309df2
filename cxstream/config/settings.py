"""One typed settings object, read from ``CXSTREAM_*`` environment variables.

Every variable is declared once in ``SETTINGS`` (name, default, help); the configuration
table in docs/operating/configuration.md is checked against this list by a unit test. Faust
itself is given an empty environment, so unprefixed variables such as ``WEB_PORT`` can never
leak into it.
"""

from __future__ import annotations

import ipaddress
import os
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

from cxstream.config.errors import SettingsError
from cxstream.config.priority import parse_rules, parse_words
from cxstream.config.secrets import Secret, read_secret
from cxstream.config.tls import build_ssl_context
from cxstream.core.priority import PriorityRule
from cxstream.core.programs import BUILTINS
from cxstream.core.timefmt import parse_rfc3339
from cxstream.core.windows import Window, parse_duration, parse_windows

PREFIX = "CXSTREAM_"


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


_LOG_LEVELS = {"crit": "critical", "critical": "critical", "error": "error", "warn": "warning",
               "warning": "warning", "info": "info", "debug": "debug"}


def _log_level(raw: str) -> str:
    try:
        return _LOG_LEVELS[raw.strip().lower()]
    except KeyError:
        raise ValueError("expected crit, error, warn, info or debug") from None


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


def _names(raw: str) -> tuple[str, ...]:
    """A comma-separated list of names (empty: none); checked against the windows later."""
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    if len(set(names)) != len(names):
        raise ValueError("a window is listed twice")
    return names


def _level(raw: str) -> float:
    """A confidence level strictly between 0.5 and 1 (e.g. 0.95, 0.99)."""
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("must be a number such as 0.95 or 0.99") from None
    if not 0.5 < value < 1:
        raise ValueError("must be between 0.5 and 1 (exclusive), e.g. 0.95 or 0.99")
    return value


def _minutes(raw: str) -> int:
    """A duration of whole minutes, in ms."""
    ms = parse_duration(raw)
    if ms % 60_000:
        raise ValueError("must be a whole number of minutes, e.g. 5m or 1h")
    return ms


def _opt_duration(raw: str) -> int | None:
    return parse_duration(raw) if raw.strip() else None


def _min_event_time(raw: str) -> int:
    """An RFC 3339 instant between 1970-01-01T00:00:00Z and now, as epoch ms. Not earlier:
    windows and the HTTP API reach a horizon back from the events, which must stay in years
    0001..9999; not later: every event would be dead-lettered."""
    ms = parse_rfc3339(raw.strip())
    if ms is None:
        raise ValueError("expected an RFC 3339 date-time with an offset or Z, "
                         "e.g. 2000-01-01T00:00:00Z")
    if ms < 0:
        raise ValueError("expected 1970-01-01T00:00:00Z or later")
    if ms > time.time() * 1000:
        raise ValueError("expected a time in the past (every event would be dead-lettered)")
    return ms


def _max_programs(raw: str) -> int:
    value = int(raw)
    if value < len(BUILTINS):
        raise ValueError(f"expected an integer >= {len(BUILTINS)} (the built-in programs "
                         "nps, csat and ces always count)")
    return value


def _dimensions(raw: str) -> frozenset[str] | None:
    names = frozenset(part.strip() for part in raw.split(",") if part.strip())
    return names or None


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


#: Where the workers of one group usually reach each other: loopback, the private ranges
#: (RFC 1918, shared address space, unique local) and link-local.
PEER_NETWORKS = ("127.0.0.0/8,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,"
                 "169.254.0.0/16,::1/128,fc00::/7,fe80::/10")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(raw: str) -> tuple[IPNetwork, ...]:
    nets = []
    for part in raw.split(","):
        if part.strip():
            try:
                nets.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{part.strip()!r} is not a network (CIDR such as "
                                 "10.0.0.0/8)") from None
    if not nets:
        raise ValueError("at least one network is needed (CIDR, comma-separated)")
    return tuple(nets)


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().upper()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return value

    return parse


def _file(raw: str) -> str:
    """A path, checked later (with the other security settings); empty means unset."""
    return str(Path(raw.strip()).expanduser()) if raw.strip() else ""


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
    Spec("security_protocol", "PLAINTEXT", _choice(SECURITY_PROTOCOLS),
         "Kafka connection security: `PLAINTEXT`, `SSL` (TLS, optionally with a client "
         "certificate), `SASL_PLAINTEXT` or `SASL_SSL` (see Kafka security)."),
    Spec("sasl_mechanism", "SCRAM-SHA-512", _choice(SASL_MECHANISMS),
         "SASL mechanism with `SASL_*` protocols: `SCRAM-SHA-512`, `SCRAM-SHA-256` or `PLAIN`."),
    Spec("sasl_username", "", str, "Kafka user for SASL (required with `SASL_*` protocols)."),
    Spec("sasl_password", "", Secret,
         "SASL password; prefer `CXSTREAM_SASL_PASSWORD_FILE` (setting both is an error)."),
    Spec("sasl_password_file", "", _file,
         "File holding the SASL password (one trailing newline is ignored), e.g. a mounted secret."),
    Spec("ssl_cafile", "", _file,
         "PEM file with the CA certificate(s) that signed the brokers' certificates; empty: "
         "the system's trust store."),
    Spec("ssl_certfile", "", _file,
         "PEM client certificate (chain) for mutual TLS; may also hold the key."),
    Spec("ssl_keyfile", "", _file, "PEM private key of `CXSTREAM_SSL_CERTFILE`."),
    Spec("ssl_key_password_file", "", _file, "File holding the password of an encrypted key."),
    Spec("ssl_check_hostname", "true", _bool,
         "Check that the broker's certificate names the host connected to (keep `true` "
         "outside labs)."),
    Spec("topic_prefix", "cx.", str,
         "Prefix of every topic, the consumer group and internal (changelog) topics; two "
         "deployments with different prefixes never mix."),
    Spec("app_id", "cxstream", str, "Application id; the consumer group is `<prefix><app_id>`."),
    Spec("partitions", "4", _pos_int,
         "Partitions of the topics cxstream creates; the input topics and the state changelog "
         "must all have this many (checked at start and at every assignment)."),
    Spec("replication", "1", _pos_int, "Replication factor of the topics cxstream creates."),
    Spec("deadletter_retention", "", _opt_duration,
         "`retention.ms` given to the dead-letter topics cxstream creates (e.g. `14d`); empty: the "
         "broker's default. They keep raw payloads: see Personal data."),
    Spec("web_bind", "127.0.0.1", str,
         "Address the worker's HTTP server binds to (`0.0.0.0` to expose it, e.g. in a container)."),
    Spec("web_port", "6066", _port, "Port of the worker's HTTP server (`/healthz`, `/readyz`, API)."),
    Spec("web_host", "", str,
         "Host name other workers use to reach this one (query routing); default: `web_bind`, "
         "or the machine's host name when binding 0.0.0.0."),
    Spec("api_token", "", str,
         "Bearer token the HTTP API requires (`/scores…`); empty: no authentication. Also the "
         "peer token when `CXSTREAM_PEER_TOKEN` is unset. See HTTP API security."),
    Spec("api_token_file", "", str,
         "File holding the API token (e.g. a mounted secret), instead of `CXSTREAM_API_TOKEN`."),
    Spec("peer_token", "", str,
         "Token the workers of a group present to each other's `/_cx/partials` when a query "
         "needs another worker's partitions; default: the API token. Every worker of a group "
         "needs the same one; without either, such queries are refused."),
    Spec("peer_token_file", "", str,
         "File holding the peer token (e.g. a mounted secret), instead of `CXSTREAM_PEER_TOKEN`."),
    Spec("peer_networks", PEER_NETWORKS, _networks,
         "Networks (CIDR, comma-separated) a peer's address must lie in before a worker sends "
         "it a query and the peer token (peer URLs come from the group's metadata, which any "
         "member can write); default: loopback, private and link-local ranges."),
    Spec("metrics_auth", "false", _bool, "Whether `/metrics` also requires the API token."),
    Spec("health_auth", "false", _bool,
         "Whether `/healthz` and `/readyz` also require the API token (off: probes need no secret)."),
    Spec("data_dir", ".cxstream", Path,
         "Local state: the worker's table store and the local broker's data (`<dir>/kafka`)."),
    Spec("store", "memory://", _store,
         "Table store: `memory://` (rebuilt from the changelog on start) or `rocksdb://` "
         "(needs the `rocksdb` extra; recommended in production)."),
    Spec("windows", "1h,24h,7d,30d", parse_windows, "Rolling windows reported per segment."),
    Spec("grace", "1h", parse_duration,
         "Extra lateness accepted beyond the largest window before a response is `too_late`."),
    Spec("min_event_time", "2000-01-01T00:00:00Z", _min_event_time,
         "Earliest `occurred_at`/`updated_at` accepted (RFC 3339, 1970 or later); earlier events "
         "are dead-lettered as `timestamp_out_of_range` (usually a producer's zero or default "
         "date)."),
    Spec("segment_dimensions", "", _dimensions,
         "Segment dimensions that count (comma-separated, e.g. `plan,region,touchpoint`); empty = all."),
    Spec("segment_value_cap", "50", _pos_int,
         "Values with a slot per dimension (per partition); a value holds one while responses "
         "carry it within the horizon, and further values fold into `<dim>:other`."),
    Spec("max_dimensions", "20", _pos_int,
         "Distinct dimensions counted per partition when `CXSTREAM_SEGMENT_DIMENSIONS` is empty; "
         "a response's further dimensions do not count (`too_many_dimensions`)."),
    Spec("max_response_dimensions", "16", _pos_int,
         "Most dimensions one response may count in (touchpoint and channel included); a "
         "response with more counts in `all` only (`too_many_dimensions`)."),
    Spec("metric_segments_max", "500", _pos_int,
         "Most segment label values exported per segment metric and window on `/metrics`; "
         "the rest are summed into `segment=\"other\"`."),
    Spec("surveys", "", _file,
         "Path of the survey program registry (TOML, see Survey programs); empty: the built-in "
         "programs `nps`, `csat` and `ces` only, which a file adds to."),
    Spec("max_programs", "50", _max_programs,
         "Most survey programs the registry may hold, the three built-ins included; a "
         "`CXSTREAM_SURVEYS` file with more is refused."),
    Spec("min_responses", "30", _pos_int, "Below this many responses a score is flagged `low_sample`."),
    Spec("target_windows", "7d", _names,
         "Windows (of `CXSTREAM_WINDOWS`, comma-separated) in which each segment's score of a "
         "program with a `target` is checked against it (`below_target`/`back_on_target` "
         "alerts); empty: no target alerts. Unset and without a 7d window: the largest."),
    Spec("trend_windows", "", _names,
         "Windows (of `CXSTREAM_WINDOWS`, comma-separated, e.g. `7d`) in which each "
         "segment's NPS is compared with the window before it at every check "
         "(`segment_shift` alerts); each must be at most half the largest window plus grace, "
         "less the settle time (both windows' buckets must be kept); empty: none."),
    Spec("trend_level", "0.999", _level,
         "Confidence level of the trend test (two-sided z-test on the NPS difference), per "
         "check: a change is significant when 0 lies outside its interval at this level. "
         "High, because a segment is tested at every check."),
    Spec("trend_min_responses", "100", _pos_int,
         "NPS responses each of the two windows needs before a change can be significant."),
    Spec("check_every", "1h", _minutes,
         "How often, in event time, target and trend windows are checked: windows ending at "
         "each multiple of this (UTC-aligned) are decided."),
    Spec("check_settle", "5m", _minutes,
         "How long, in event time, a window's end waits before it is decided: answers later "
         "than this still count in scores, not in that decision."),
    Spec("journey_length", "10", _pos_int, "Recent interactions kept per customer as alert context."),
    Spec("at_risk", "true", _bool,
         "Whether CSAT and CES answers cause `at_risk` alerts: a customer who is not a "
         "detractor gives an answer in the program's at-risk range (CSAT: the bottom two "
         "points; CES: the high-effort range) after one that was not."),
    Spec("priority_rules", "tier=strategic:urgent;tier=high:high;arr>=100000:high;tier=low:low",
         parse_rules,
         "Priority of customer alerts, first match wins, else `normal`: `;`-separated "
         "`<conditions>:<urgent|high|normal|low>`, conditions `&`-joined, each `tier=a|b`, "
         "`currency=EUR`, `kind=detractor|at_risk`, `arr>=N` (also `<=`, `>`, `<`, `=`) or `*` "
         "(see Alerts, Priority)."),
    Spec("priority_words", "cancel,billing,refund,churn", parse_words,
         "Words (comma-separated, whole words, any case) that raise a detractor alert whose "
         "comment holds one by one priority step; empty: none."),
    Spec("batch_size", "2000", _pos_int,
         "Most input messages fetched and handled together: each state entry is written once "
         "per batch, so larger batches cost fewer changelog writes per message (a batch only "
         "holds what has arrived: small when the worker keeps up)."),
    Spec("session_timeout", "30", _seconds,
         "Kafka consumer session timeout (seconds). Shorter: a killed worker's partitions move "
         "sooner; longer: fewer spurious rebalances on slow hosts or long GC pauses."),
    Spec("notify_config", "", str,
         "Path of the notification routing file (TOML, see Notifications); empty: no notifications."),
    Spec("log_level", "info", _log_level, "Worker log level: crit, error, warn, info or debug."),
)


@dataclass(frozen=True, slots=True)
class Settings:
    """The whole configuration of one cxstream process (see docs/operating/configuration.md)."""

    broker: str
    security_protocol: str
    sasl_mechanism: str
    sasl_username: str
    sasl_password: Secret
    sasl_password_file: str
    ssl_cafile: str
    ssl_certfile: str
    ssl_keyfile: str
    ssl_key_password_file: str
    ssl_check_hostname: bool
    topic_prefix: str
    app_id: str
    partitions: int
    replication: int
    deadletter_retention: int | None
    web_bind: str
    web_port: int
    web_host: str
    api_token: str = field(repr=False)
    api_token_file: str
    peer_token: str = field(repr=False)
    peer_token_file: str
    peer_networks: tuple[IPNetwork, ...]
    metrics_auth: bool
    health_auth: bool
    data_dir: Path
    store: str
    windows: tuple[Window, ...]
    grace: int
    min_event_time: int
    segment_dimensions: frozenset[str] | None
    segment_value_cap: int
    max_dimensions: int
    max_response_dimensions: int
    metric_segments_max: int
    surveys: str
    max_programs: int
    min_responses: int
    target_windows: tuple[str, ...]
    trend_windows: tuple[str, ...]
    trend_level: float
    trend_min_responses: int
    check_every: int
    check_settle: int
    journey_length: int
    at_risk: bool
    priority_rules: tuple[PriorityRule, ...]
    priority_words: frozenset[str]
    batch_size: int
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
                f"unknown setting(s) {', '.join(unknown)}; see the configuration table in "
                "docs/operating/configuration.md")
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
        _check_kafka_security(values, source)
        _check_target_windows(values, "CXSTREAM_TARGET_WINDOWS" in source
                              or "target_windows" in overrides)
        _check_trend_windows(values)
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


def _check_target_windows(values: dict[str, Any], given: bool) -> None:
    """Each target window must be a configured window (its scores exist only there). The
    default (7d) stands for the largest window when CXSTREAM_WINDOWS has no 7d."""
    names = {w.name for w in values["windows"]}
    if not given and not set(values["target_windows"]) <= names:
        values["target_windows"] = (max(values["windows"], key=lambda w: w.ms).name,)
    for name in values["target_windows"]:
        if name not in names:
            raise SettingsError(
                f"CXSTREAM_TARGET_WINDOWS names {name!r}, which is not one of CXSTREAM_WINDOWS "
                f"({', '.join(sorted(names))}): use one of those, or add it to CXSTREAM_WINDOWS")


def _check_trend_windows(values: dict[str, Any]) -> None:
    """Each trend window must be a configured window whose window before it is still kept
    when it is decided: at most half of the largest window plus grace, less the settle
    time; and the settle time at most the grace."""
    if values["check_settle"] > values["grace"]:
        raise SettingsError(
            "CXSTREAM_CHECK_SETTLE is longer than CXSTREAM_GRACE: a window must be decided "
            "while its buckets are all kept; shorten it, or lengthen the grace")
    by_name = {w.name: w for w in values["windows"]}
    # Both windows' buckets must still be there when the later one is decided, `settle`
    # after its end.
    horizon = max(w.ms for w in values["windows"]) + values["grace"] - values["check_settle"]
    for name in values["trend_windows"]:
        if name not in by_name:
            raise SettingsError(
                f"CXSTREAM_TREND_WINDOWS names {name!r}, which is not one of CXSTREAM_WINDOWS "
                f"({', '.join(sorted(by_name))}): use one of those, or add it to "
                "CXSTREAM_WINDOWS")
        if 2 * by_name[name].ms > horizon:
            raise SettingsError(
                f"CXSTREAM_TREND_WINDOWS names {name!r}, but the window before it is not kept "
                "(buckets are kept for the largest window plus CXSTREAM_GRACE, and a window is "
                "decided CXSTREAM_CHECK_SETTLE after its end): use a window of at most half "
                "that less the settle time, or add a longer window to CXSTREAM_WINDOWS")


def _check_kafka_security(values: dict[str, Any], source: Mapping[str, str]) -> None:
    """Cross-check the Kafka security settings (and read the password file) at load time, so
    a misconfiguration stops the process before any connection with a message naming the fix."""
    protocol = values["security_protocol"]
    sasl, tls = protocol.startswith("SASL_"), protocol.endswith("SSL")
    env = {spec.attr: spec.env for spec in SETTINGS}
    proto = f"CXSTREAM_SECURITY_PROTOCOL={protocol}"
    unused = [env[a] for a in ("sasl_username", "sasl_password", "sasl_password_file")
              if values[a]] + (["CXSTREAM_SASL_MECHANISM"]
                               if source.get("CXSTREAM_SASL_MECHANISM") else [])
    if unused and not sasl:
        raise SettingsError(f"{', '.join(unused)} set, but {proto} does not use SASL: set "
                            "CXSTREAM_SECURITY_PROTOCOL=SASL_SSL (or SASL_PLAINTEXT), or unset them")
    unused = [env[a] for a in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_key_password_file")
              if values[a]] + (["CXSTREAM_SSL_CHECK_HOSTNAME"]
                               if source.get("CXSTREAM_SSL_CHECK_HOSTNAME") else [])
    if unused and not tls:
        raise SettingsError(f"{', '.join(unused)} set, but {proto} does not use TLS: set "
                            "CXSTREAM_SECURITY_PROTOCOL=SSL or SASL_SSL, or unset them")
    if sasl:
        if not values["sasl_username"].strip():
            raise SettingsError(f"{proto} needs CXSTREAM_SASL_USERNAME (the Kafka user cxstream "
                                "logs in as)")
        if values["sasl_password"] and values["sasl_password_file"]:
            raise SettingsError("CXSTREAM_SASL_PASSWORD and CXSTREAM_SASL_PASSWORD_FILE are both "
                                "set; keep only one (the file is preferred: environment "
                                "variables are easier to leak)")
        if values["sasl_password_file"]:
            text = read_secret("CXSTREAM_SASL_PASSWORD_FILE", values["sasl_password_file"])
            values["sasl_password"] = Secret(text)
        if not values["sasl_password"]:
            raise SettingsError(f"{proto} needs a password: set CXSTREAM_SASL_PASSWORD_FILE to a "
                                "file holding it (or CXSTREAM_SASL_PASSWORD)")
    if values["ssl_keyfile"] and not values["ssl_certfile"]:
        raise SettingsError("CXSTREAM_SSL_KEYFILE is set without CXSTREAM_SSL_CERTFILE: set the "
                            "client certificate too (mutual TLS needs both)")
    if values["ssl_key_password_file"] and not values["ssl_certfile"]:
        raise SettingsError("CXSTREAM_SSL_KEY_PASSWORD_FILE is set without CXSTREAM_SSL_CERTFILE "
                            "and CXSTREAM_SSL_KEYFILE")
    for attr in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_key_password_file"):
        if values[attr]:
            read_secret(env[attr], values[attr])  # readable, not empty
    if tls:
        build_ssl_context(values)  # parses CA, certificate and key now: errors name the setting


#: Variables read elsewhere that are not worker settings: the test suite's broker override and
#: compiled-core check, and the install's switch for compiling the core
#: (docs/development/compiled-core.md), which may stay set in the environment the worker
#: later runs in.
_NON_SETTING_VARS = frozenset({"CXSTREAM_TEST_BROKER", "CXSTREAM_REQUIRE_COMPILED",
                               "CXSTREAM_COMPILE"})


def _hostname() -> str:
    import socket

    return socket.gethostname()


def setting_names() -> list[str]:
    """All documented variable names, in table order (used by the test that checks the table
    in docs/operating/configuration.md)."""
    return [spec.env for spec in SETTINGS]


assert {f.name for f in fields(Settings)} - {"extra"} == {s.attr for s in SETTINGS}
