"""docker-compose.yml, checked without Docker: services, ports, real CXSTREAM_* settings with
valid values, existing files, and agreement with the Prometheus and Dockerfile configuration."""

from __future__ import annotations

import base64
import re

import yaml

from cxstream.cli import main as cli
from cxstream.config.settings import Settings, setting_names

from .promql_names import PROMETHEUS, ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
CXSTREAM = {name: s for name, s in SERVICES.items() if s.get("build") == "."}
WORKERS = {name: s for name, s in CXSTREAM.items() if s.get("command") in (None, ["worker"])}


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_services() -> None:
    assert {"kafka", "simulator", "prometheus", "grafana"} <= set(SERVICES)
    assert len(WORKERS) >= 2, "two workers show the scatter-gather query"
    assert set(CXSTREAM) == set(WORKERS) | {"simulator", "backfill"}
    assert (ROOT / "Dockerfile").is_file()


def test_ports_are_local_and_distinct() -> None:
    host_ports = []
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            m = re.fullmatch(r"127\.0\.0\.1:(\d+):(\d+)", str(port))
            assert m, f"{name}: publish {port!r} on 127.0.0.1 only"
            host_ports.append(int(m.group(1)))
    assert len(host_ports) == len(set(host_ports))


def test_cxstream_environment_is_real_settings_with_valid_values() -> None:
    names = set(setting_names())
    for name, service in CXSTREAM.items():
        env = env_of(service)
        assert env, name
        unknown = {k for k in env if k.startswith("CXSTREAM_")} - names
        assert not unknown, f"{name}: not cxstream settings: {sorted(unknown)}"
        Settings.from_env(env)  # raises SettingsError on a bad value
        assert env["CXSTREAM_BROKER"] == "kafka://kafka:29092", name


def test_dockerfile_environment_is_real_settings() -> None:
    text = (ROOT / "Dockerfile").read_text()
    env = dict(re.findall(r"\b(CXSTREAM_[A-Z_]+)=(\S+)", text))
    assert set(env) <= set(setting_names())
    Settings.from_env(env)
    assert "HEALTHCHECK" in text and "/healthz" in text  # simulator waits for service_healthy


def test_workers_are_reachable_by_peers_and_keep_state() -> None:
    volumes_used = []
    for name, service in WORKERS.items():
        cfg = Settings.from_env(env_of(service))
        assert cfg.web_bind == "0.0.0.0", f"{name}: bind all interfaces in a container"
        assert cfg.web_host == name, f"{name}: peers reach it by its service name"
        assert any(str(p).endswith(f":{cfg.web_port}") for p in service["ports"])
        mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
        assert str(cfg.data_dir) in mounts, f"{name}: CXSTREAM_DATA_DIR must be a volume"
        volumes_used.append(mounts[str(cfg.data_dir)])
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert len(volumes_used) == len(set(volumes_used)), "each worker needs its own state volume"


def test_workers_share_a_peer_token_made_at_random() -> None:
    """/_cx/partials is never open: both workers read one token, made once by a one-shot
    service into a volume (never a value written in this file)."""
    maker = SERVICES["peer-token"]
    (maker_mount,) = maker["volumes"]
    volume, directory = maker_mount.split(":")[:2]
    assert "secrets.token_urlsafe" in " ".join(maker["command"])
    assert directory in " ".join(maker["command"]) and "os.path.exists" in " ".join(maker["command"])
    for name, service in WORKERS.items():
        env = env_of(service)
        assert "CXSTREAM_PEER_TOKEN" not in env and "CXSTREAM_API_TOKEN" not in env, name
        assert env["CXSTREAM_PEER_TOKEN_FILE"] == f"{directory}/token", name
        assert f"{volume}:{directory}:ro" in service["volumes"], name
        assert service["depends_on"]["peer-token"]["condition"] == "service_completed_successfully"


def test_kafka_listener_and_storage() -> None:
    kafka = env_of(SERVICES["kafka"])
    assert "INTERNAL://kafka:29092" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in SERVICES["kafka"]["volumes"]}
    assert kafka["KAFKA_LOG_DIRS"] in mounts, "Kafka data must outlive the container, like the workers' state"
    raw = kafka["CLUSTER_ID"]
    assert len(raw) == 22 and len(base64.urlsafe_b64decode(raw + "==")) == 16


def test_commands_parse() -> None:
    for name, service in CXSTREAM.items():
        args = service.get("command") or ["worker"]
        command = cli.commands[args[0]]
        command.make_context(args[0], list(args[1:]))  # raises on an unknown option or bad value


def test_volumes_exist() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} not declared"


def test_prometheus_scrapes_every_worker() -> None:
    prom = SERVICES["prometheus"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prom["volumes"]}
    assert (ROOT / mounts["/etc/prometheus"]).resolve() == PROMETHEUS.resolve()
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "cxstream")
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    expected = {f"{name}:{Settings.from_env(env_of(s)).web_port}" for name, s in WORKERS.items()}
    assert targets == expected


def test_images_are_pinned() -> None:
    for name, service in SERVICES.items():
        if "image" in service:
            assert re.search(r":[\w.-]+$", service["image"]) and not service["image"].endswith(":latest"), name
