"""deploy/k8s: every manifest parses, kustomizations list existing files, environment variables
are real settings with valid values, probes and monitors point at real endpoints, and the
workers are reachable by their peers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from cxstream.notify import routing
from cxstream.config.settings import Settings, setting_names

from .promql_names import DEPLOY, ROOT

K8S = DEPLOY / "k8s"
FILES = sorted(K8S.rglob("*.yaml"))
WEB_PAGES = set(re.findall(r'@app\.page\("(/[^"{]*)"\)', (ROOT / "cxstream" / "api" / "routes.py").read_text()))


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


MANIFESTS = {p: docs(p) for p in FILES if p.name != "kustomization.yaml"}
BY_KIND: dict[str, list[dict[str, Any]]] = {}
for _docs in MANIFESTS.values():
    for _d in _docs:
        BY_KIND.setdefault(_d["kind"], []).append(_d)


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in BY_KIND.get(kind, []) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


CONFIG = one("ConfigMap", "cxstream-config")["data"]
STS = one("StatefulSet")
POD = STS["spec"]["template"]["spec"]
(WORKER,) = POD["containers"]


def worker_env() -> dict[str, str]:
    """The environment a worker sees: the ConfigMap, then the container's own variables."""
    env = dict(CONFIG)
    for item in WORKER.get("env", []):
        if "value" in item:
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: {"POD_NAME": "cxstream-0"}[m.group(1)],
                                       item["value"])
    return env


def test_every_manifest_parses_and_is_named() -> None:
    assert MANIFESTS
    for path, documents in MANIFESTS.items():
        assert documents, path
        for d in documents:
            assert d["apiVersion"] and d["kind"] and d["metadata"]["name"], path


def test_kustomizations_list_existing_files_and_nothing_is_orphaned() -> None:
    listed: set[Path] = set()
    for kust in K8S.rglob("kustomization.yaml"):
        doc = yaml.safe_load(kust.read_text())
        for res in doc["resources"]:
            path = (kust.parent / res).resolve()
            assert path.is_file(), f"{kust}: {res} missing"
            listed.add(path)
    orphans = {p.resolve() for p in MANIFESTS} - listed
    assert {p.name for p in orphans} == {"secret.example.yaml"}  # applied by hand, on purpose
    main = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert main["namespace"] == "cxstream"
    assert not any("monitoring" in r for r in main["resources"]), "operator CRDs stay optional"


def test_environment_is_real_settings_with_valid_values() -> None:
    names = set(setting_names())
    for key in CONFIG:
        assert key in names, f"ConfigMap: {key} is not a cxstream setting"
    for item in WORKER.get("env", []):
        if item["name"].startswith("CXSTREAM_"):
            assert item["name"] in names, item["name"]
    cfg = Settings.from_env(worker_env())
    assert cfg.web_bind == "0.0.0.0"
    assert cfg.store == "rocksdb://"
    assert [e["configMapRef"]["name"] for e in WORKER["envFrom"]] == ["cxstream-config"]


def test_no_service_links_leak_cxstream_variables() -> None:
    # Services named cxstream-* would inject CXSTREAM_*_SERVICE_HOST etc., which cxstream
    # refuses as unknown settings.
    assert POD["enableServiceLinks"] is False


def test_peers_reach_each_worker_by_a_stable_name() -> None:
    peers = one("Service", STS["spec"]["serviceName"])
    assert peers["spec"]["clusterIP"] == "None"
    assert peers["spec"]["publishNotReadyAddresses"] is True
    env = [e["name"] for e in WORKER["env"]]
    host = next(e for e in WORKER["env"] if e["name"] == "CXSTREAM_WEB_HOST")
    assert host["value"] == f"$(POD_NAME).{peers['metadata']['name']}"
    assert env.index("POD_NAME") < env.index("CXSTREAM_WEB_HOST"), "$(POD_NAME) must be defined first"
    pod_name = next(e for e in WORKER["env"] if e["name"] == "POD_NAME")
    assert pod_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_workers_read_their_peer_token_from_a_secret() -> None:
    """/_cx/partials is never open: every worker reads one peer token from the Secret the
    operator creates (never a value in these files), and the steps say how to create it."""
    (item,) = [e for e in WORKER["env"] if e["name"] == "CXSTREAM_PEER_TOKEN"]
    ref = item["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == ("cxstream-peer", "token") and not ref.get("optional")
    assert "CXSTREAM_PEER_TOKEN" not in CONFIG and "CXSTREAM_API_TOKEN" not in CONFIG
    create = "kubectl -n cxstream create secret generic cxstream-peer --from-literal=token="
    assert create in (K8S / "kustomization.yaml").read_text()


def test_probes_point_at_real_endpoints_on_the_web_port() -> None:
    assert {"/healthz", "/readyz", "/metrics"} <= WEB_PAGES
    ports = {p["name"]: p["containerPort"] for p in WORKER["ports"]}
    assert ports["http"] == int(CONFIG["CXSTREAM_WEB_PORT"])
    assert WORKER["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert WORKER["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = WORKER[probe]["httpGet"]
        assert get["path"] in WEB_PAGES and get["port"] in ports, probe


def test_pod_is_hardened_and_sized() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    uid = int(re.search(r"useradd --uid (\d+)", dockerfile).group(1))
    pod_sc, sc = POD["securityContext"], WORKER["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] == uid and pod_sc["fsGroup"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert POD["terminationGracePeriodSeconds"] >= 30
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(WORKER["resources"][kind]), kind


def test_state_and_scratch_are_writable() -> None:
    cfg = Settings.from_env(worker_env())
    mounts = {m["mountPath"]: m["name"] for m in WORKER["volumeMounts"]}
    claims = {c["metadata"]["name"] for c in STS["spec"]["volumeClaimTemplates"]}
    assert mounts[str(cfg.data_dir)] in claims, "RocksDB state needs the PersistentVolume"
    volumes = {v["name"]: v for v in POD["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]], "read-only root: /tmp must be a volume"


def test_selectors_match_the_pods() -> None:
    labels = STS["spec"]["template"]["metadata"]["labels"]
    selectors = [STS["spec"]["selector"]["matchLabels"], one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
                 one("PodMonitor")["spec"]["selector"]["matchLabels"]]
    selectors += [s["spec"]["selector"] for s in BY_KIND["Service"]]
    port_names = {p["name"] for p in WORKER["ports"]}
    for selector in selectors:
        assert selector.items() <= labels.items(), selector
    for service in BY_KIND["Service"]:
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names


def test_podmonitor_scrapes_metrics_as_job_cxstream() -> None:
    (endpoint,) = one("PodMonitor")["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in {p["name"] for p in WORKER["ports"]}
    assert endpoint["path"] in WEB_PAGES and endpoint["path"] == "/metrics"
    assert {"action": "replace", "targetLabel": "job", "replacement": "cxstream"} in endpoint["relabelings"]


def test_secret_example_matches_the_mount_and_the_commented_settings(tmp_path: Path) -> None:
    secret = one("Secret", "cxstream-secrets")
    for key, value in secret["stringData"].items():
        (tmp_path / key).write_text(value)
    config = routing.load(tmp_path / "notify.toml")  # a valid routing file
    assert config.channels and config.default in config.channels
    mount = next(m for m in WORKER["volumeMounts"] if m["name"] == "secrets")
    volume = next(v for v in POD["volumes"] if v["name"] == "secrets")
    assert volume["secret"]["secretName"] == "cxstream-secrets" and volume["secret"]["optional"] is True
    assert mount["readOnly"] is True
    # The commented settings in the ConfigMap are real settings naming files of this mount.
    commented = dict(re.findall(r"^\s*#\s*(CXSTREAM_[A-Z_]+):\s*(\S+)", (K8S / "configmap.yaml").read_text(),
                                flags=re.M))
    assert {"CXSTREAM_NOTIFY_CONFIG", "CXSTREAM_API_TOKEN_FILE"} <= set(commented) <= set(setting_names())
    for value in commented.values():
        assert value.startswith(mount["mountPath"] + "/"), value
    assert commented["CXSTREAM_NOTIFY_CONFIG"] == f"{mount['mountPath']}/notify.toml"
    assert commented["CXSTREAM_API_TOKEN_FILE"] == f"{mount['mountPath']}/api-token"
    assert "api-token" in secret["stringData"]
