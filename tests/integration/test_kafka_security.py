"""Kafka security end to end: a real broker with a TLS + SCRAM-SHA-512 listener that also
requires client certificates (mutual TLS), an SSL-only mTLS listener, and an authorizer that
denies everything not granted. cxstream's principals get exactly the ACLs listed in
docs/operating/kafka-security.md (`Minimal ACLs`), so these tests also prove that list is
sufficient.

Certificates are made with `openssl` per run; SCRAM users are bootstrapped when the broker's
storage is formatted. A missing `openssl` or Java fails the tests; they are never skipped.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from cxstream.tools.broker import BrokerError, LocalBroker
from cxstream.core.timefmt import format_rfc3339
from cxstream.kafka.security import client_kwargs
from cxstream.config.settings import Settings
from cxstream.kafka.topics import Topics

from .harness import Worker, free_port, read_all, unique_prefix, wait_for
from .receivers import SECRET, HttpReceiver

WORKER_USER, WORKER_PASSWORD = "cxstream", "worker-Secret-1"
PRODUCER_USER, PRODUCER_PASSWORD = "cxproducer", "producer-Secret-2"
CLIENT_CN = "cxstream-client"  # the mTLS principal is User:CN=cxstream-client

# ACL wire codes (Kafka's ResourceType, PatternType, AclOperation, AclPermissionType).
TOPIC, GROUP = 2, 3
LITERAL, PREFIXED = 3, 4
READ, WRITE, CREATE, DESCRIBE = 3, 4, 5, 8
ALLOW = 3


@dataclass(frozen=True)
class Pki:
    ca: Path
    client_cert: Path
    client_key: Path
    broker_keystore: Path


@dataclass(frozen=True)
class SecureBroker:
    broker: LocalBroker
    pki: Pki
    sasl_ssl_port: int
    ssl_port: int

    @property
    def plaintext(self) -> str:  # the super user's listener, for granting ACLs only
        return self.broker.bootstrap


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"openssl {' '.join(args)} failed:\n{proc.stderr}"


def make_pki(d: Path) -> Pki:
    """A CA, a broker certificate for 127.0.0.1/localhost and a client certificate (PEM)."""
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=cxstream test CA", "-keyout", "ca.key", "-out", "ca.pem",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    for name, subject, ext in (
        ("broker", "/CN=localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                    "extendedKeyUsage=serverAuth\n"),
        ("client", f"/CN={CLIENT_CN}", "extendedKeyUsage=clientAuth\n"),
    ):
        (d / f"{name}.ext").write_text(ext)
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
                 "-out", f"{name}.pem", cwd=d)
    keystore = d / "broker-keystore.pem"  # Kafka's PEM keystore: PKCS#8 key, then the chain
    keystore.write_text((d / "broker.key").read_text() + (d / "broker.pem").read_text()
                        + (d / "ca.pem").read_text())
    return Pki(d / "ca.pem", d / "client.pem", d / "client.key", keystore)


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    missing = [tool for tool in ("openssl", "java") if shutil.which(tool) is None]
    if missing:  # fail, never skip: a skipped security suite looks green
        pytest.fail(f"{' and '.join(missing)} needed for the Kafka security tests: "
                    "apt-get install -y openssl openjdk-17-jre-headless", pytrace=False)
    root = tmp_path_factory.mktemp("kafka-security")
    pki = make_pki(root / "pki")
    sasl_ssl_port, ssl_port = free_port(), free_port()
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    broker = LocalBroker(
        port=free_port(), controller_port=free_port(), data_dir=root / "kafka",
        listeners={"SASL_SSL": sasl_ssl_port, "SSL": ssl_port},
        properties={
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(pki.broker_keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(pki.ca),
            "ssl.client.auth": "required",  # mutual TLS on both TLS listeners
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": scram,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            # The loopback PLAINTEXT and controller listeners are the cluster's own (and ours,
            # to grant ACLs); every other principal gets only what it is granted.
            "super.users": "User:ANONYMOUS",
        },
        format_args=["--add-scram", f"SCRAM-SHA-512=[name={WORKER_USER},password={WORKER_PASSWORD}]",
                     "--add-scram",
                     f"SCRAM-SHA-512=[name={PRODUCER_USER},password={PRODUCER_PASSWORD}]"])
    try:
        broker.start(wait_s=120)
    except BrokerError as exc:
        pytest.fail(f"the TLS/SCRAM test broker could not start: {exc}", pytrace=False)
    try:
        yield SecureBroker(broker, pki, sasl_ssl_port, ssl_port)
    finally:
        broker.stop()


# -- ACLs: the docs' list, as data ---------------------------------------------------------------
def worker_acls(prefix: str, app_id: str = "cxstream") -> list[tuple[int, str, int, int]]:
    """(resource type, name, pattern type, operation) a worker with notifications needs, with
    cxstream creating its topics — the docs' table, row by row."""
    t, group = Topics(prefix), f"{prefix}{app_id}"
    acls = [(TOPIC, name, LITERAL, op) for name in (t.surveys, t.interactions, t.customers)
            for op in (READ, DESCRIBE)]
    acls += [(TOPIC, name, LITERAL, op) for name in (t.alerts, t.deadletter)
             for op in (WRITE, DESCRIBE)]
    acls += [(TOPIC, f"{group}-", PREFIXED, op) for op in (CREATE, READ, WRITE, DESCRIBE)]
    acls += [(GROUP, group, LITERAL, READ)]
    # the notifier
    acls += [(TOPIC, t.alerts, LITERAL, READ), (GROUP, f"{group}.notifier", LITERAL, READ)]
    acls += [(TOPIC, t.notifications_sent, LITERAL, op) for op in (READ, WRITE, DESCRIBE)]
    acls += [(TOPIC, t.notifications_deadletter, LITERAL, op) for op in (WRITE, DESCRIBE)]
    # cxstream creates the seven topics when they are missing
    acls += [(TOPIC, name, LITERAL, op) for name in t.all_external() for op in (CREATE, DESCRIBE)]
    return sorted(set(acls))


def producer_acls(prefix: str) -> list[tuple[int, str, int, int]]:
    """`cxstream produce`: write the inputs; describe every topic it checks."""
    t = Topics(prefix)
    acls = [(TOPIC, name, LITERAL, WRITE) for name in (t.surveys, t.interactions, t.customers)]
    acls += [(TOPIC, name, LITERAL, DESCRIBE) for name in t.all_external()]
    return sorted(set(acls))


async def grant(bootstrap: str, principal: str, acls: list[tuple[int, str, int, int]]) -> None:
    """CreateAcls through the super user's PLAINTEXT listener (aiokafka has no ACL helper)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.protocol.admin import CreateAclsRequest

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        node = admin._client.get_random_node()  # noqa: SLF001
        for rtype, name, pattern, op in acls:
            resp = await admin._client.send(  # noqa: SLF001
                node, CreateAclsRequest(rtype, name, pattern, principal, "*", op, ALLOW))
            errors = [r for r in resp.creation_responses if r[0]]
            assert not errors, f"CreateAcls {principal} {name} {op}: {errors}"
    finally:
        await admin.close()


# -- helpers ---------------------------------------------------------------------------------------
def sasl_env(sb: SecureBroker, tmp: Path, *, user: str, password: str) -> dict[str, str]:
    secret = tmp / f"{user}-password"
    secret.write_text(password + "\n")  # as a mounted secret usually is
    secret.chmod(0o600)
    return {"CXSTREAM_BROKER": f"127.0.0.1:{sb.sasl_ssl_port}",
            "CXSTREAM_SECURITY_PROTOCOL": "SASL_SSL",
            "CXSTREAM_SASL_USERNAME": user,
            "CXSTREAM_SASL_PASSWORD_FILE": str(secret),
            "CXSTREAM_SSL_CAFILE": str(sb.pki.ca),
            "CXSTREAM_SSL_CERTFILE": str(sb.pki.client_cert),
            "CXSTREAM_SSL_KEYFILE": str(sb.pki.client_key)}


def cli(args: list[str], env: dict[str, str], timeout_s: float = 60
        ) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("CXSTREAM_")} | env
    return subprocess.run([sys.executable, "-m", "cxstream", *args], env=full, text=True,
                          capture_output=True, timeout=timeout_s)


def surveys_file(path: Path, n: int) -> Path:
    now = int(time.time() * 1000) // 60_000 * 60_000
    with path.open("wb") as f:
        for i in range(n):
            f.write(orjson.dumps({"event_id": f"s{i}", "customer_id": f"c{i % 7}", "survey": "nps",
                                  "score": i % 11, "occurred_at": format_rfc3339(now - 60_000 * (i + 1)),
                                  "segment": {"plan": "pro"}}) + b"\n")
    return path


# -- tests -----------------------------------------------------------------------------------------
async def test_worker_runs_over_sasl_ssl_scram_with_mutual_tls(secure_broker: SecureBroker,
                                                               tmp_path: Path) -> None:
    sb, prefix = secure_broker, unique_prefix()
    await grant(sb.plaintext, f"User:{WORKER_USER}", worker_acls(prefix))
    await grant(sb.plaintext, f"User:{PRODUCER_USER}", producer_acls(prefix))
    env = sasl_env(sb, tmp_path, user=WORKER_USER, password=WORKER_PASSWORD)
    http = HttpReceiver()  # notifications too: the notifier's own Kafka clients are secured
    await http.start()
    routing = tmp_path / "notify.toml"
    routing.write_text(f'''default = "hook"
[channels.hook]
type = "webhook"
url = "{http.url}/hook/ok"
secret = "{SECRET}"
allow_private = true
''')
    env["CXSTREAM_NOTIFY_CONFIG"] = str(routing)
    w = Worker(bootstrap=env.pop("CXSTREAM_BROKER"), prefix=prefix, data_dir=tmp_path / "w",
               extra_env=env)
    w.start()
    try:
        await w.wait_ready(120)
        produced = cli(["produce", "surveys", str(surveys_file(tmp_path / "s.jsonl", 25))],
                       {**sasl_env(sb, tmp_path, user=PRODUCER_USER, password=PRODUCER_PASSWORD),
                        "CXSTREAM_TOPIC_PREFIX": prefix})
        assert produced.returncode == 0, produced.stderr
        assert "sent 25 messages" in produced.stderr

        async def accepted() -> float:
            return sum(v for (name, labels), v in (await w.metrics()).items()
                       if name == "cxstream_events_total" and ("outcome", "accepted") in labels)

        await wait_for(accepted, 90, "the 25 surveys to be processed over SASL_SSL")
        await wait_for(lambda: _equals(accepted, 25), 30, "exactly 25 accepted")
        status, body = await w.get("/scores/all", window="24h")
        assert status == 200 and body["nps"]["responses"] == 25, body
        # c0..c6 each answered 0..6 last: seven detractor alerts, each notified.
        await wait_for(lambda: _ready(len(http.accepted) >= 7), 60, "7 notifications")
        assert w.proc is not None and w.proc.poll() is None, w.log_tail()
    finally:
        w.stop()
        await http.stop()
    log = w.log_path.read_text(errors="replace")
    assert WORKER_PASSWORD not in log and PRODUCER_PASSWORD not in log
    # Faust created its internal topics under the granted prefix, through the secure listener.
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=sb.plaintext)
    await admin.start()
    try:
        topics = set(await admin.list_topics())
    finally:
        await admin.close()
    assert set(Topics(prefix).all_external()) <= topics
    assert f"{prefix}cxstream-state-changelog" in topics


async def _equals(fn, value: float) -> bool:  # type: ignore[no-untyped-def]
    return await fn() == value


async def _ready(value: bool) -> bool:
    return value


async def test_acls_are_enforced_for_sasl_principals(secure_broker: SecureBroker,
                                                     tmp_path: Path) -> None:
    """The authorizer really denies what was not granted (so the tests above prove the list)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    sb, prefix = secure_broker, unique_prefix()
    await grant(sb.plaintext, f"User:{PRODUCER_USER}", producer_acls(prefix))
    env = sasl_env(sb, tmp_path, user=PRODUCER_USER, password=PRODUCER_PASSWORD)
    settings = Settings.from_env(env)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, **client_kwargs(settings))
    await admin.start()
    try:
        resp = await admin.create_topics([NewTopic(Topics(prefix).alerts, 1, 1)])
    finally:
        await admin.close()
    assert [err[1] for err in resp.topic_errors] == [29], resp  # TOPIC_AUTHORIZATION_FAILED


async def test_wrong_password_fails_fast_with_a_clear_error(secure_broker: SecureBroker,
                                                            tmp_path: Path) -> None:
    sb = secure_broker
    env = sasl_env(sb, tmp_path, user=WORKER_USER, password="not-the-password")
    w = Worker(bootstrap=env.pop("CXSTREAM_BROKER"), prefix=unique_prefix(),
               data_dir=tmp_path / "w", extra_env=env)
    started = time.monotonic()
    w.start()
    assert w.proc is not None
    try:
        code = await asyncio.to_thread(w.proc.wait, 45)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"a worker with a wrong password still runs after 45 s:\n"
                             f"{w.log_tail()}") from None
    finally:
        w.kill()
    elapsed = time.monotonic() - started
    out = w.log_path.read_text(errors="replace")
    assert code == 2, out
    assert elapsed < 30, f"took {elapsed:.1f}s"
    assert "authentication" in out.lower() and "CXSTREAM_SASL_PASSWORD" in out, out
    assert "Traceback" not in out, out
    assert "not-the-password" not in out


def test_produce_over_ssl_with_a_client_certificate_only(secure_broker: SecureBroker,
                                                         tmp_path: Path) -> None:
    """The SSL listener authenticates by certificate alone (principal from the certificate)."""
    sb, prefix = secure_broker, unique_prefix()
    producer = producer_acls(prefix) + [(TOPIC, name, LITERAL, CREATE)
                                        for name in Topics(prefix).all_external()]
    asyncio.run(grant(sb.plaintext, f"User:CN={CLIENT_CN}", producer))
    env = {"CXSTREAM_BROKER": f"127.0.0.1:{sb.ssl_port}", "CXSTREAM_SECURITY_PROTOCOL": "SSL",
           "CXSTREAM_SSL_CAFILE": str(sb.pki.ca), "CXSTREAM_SSL_CERTFILE": str(sb.pki.client_cert),
           "CXSTREAM_SSL_KEYFILE": str(sb.pki.client_key), "CXSTREAM_TOPIC_PREFIX": prefix}
    produced = cli(["produce", "surveys", str(surveys_file(tmp_path / "s.jsonl", 5))], env)
    assert produced.returncode == 0, produced.stderr
    records = asyncio.run(read_all(sb.plaintext, Topics(prefix).surveys))
    assert len(records) == 5

    # Without a CA the broker's certificate is not trusted: a clear error, not a hang.
    untrusted = {k: v for k, v in env.items() if k != "CXSTREAM_SSL_CAFILE"}
    failed = cli(["produce", "surveys", str(tmp_path / "s.jsonl")], untrusted, timeout_s=45)
    assert failed.returncode == 2, failed.stderr
    assert "CXSTREAM_SSL_CAFILE" in failed.stderr and "certificate" in failed.stderr, failed.stderr


def test_client_kwargs_match_what_the_settings_say(tmp_path: Path) -> None:
    """The TLS context and SASL arguments every aiokafka client gets (no broker needed)."""
    pki = make_pki(tmp_path / "pki")
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    s = Settings.from_env({"CXSTREAM_SECURITY_PROTOCOL": "SASL_SSL",
                           "CXSTREAM_SASL_USERNAME": "u", "CXSTREAM_SASL_PASSWORD_FILE": str(secret),
                           "CXSTREAM_SSL_CAFILE": str(pki.ca),
                           "CXSTREAM_SSL_CERTFILE": str(pki.client_cert),
                           "CXSTREAM_SSL_KEYFILE": str(pki.client_key)})
    kw = client_kwargs(s)
    assert kw["security_protocol"] == "SASL_SSL" and kw["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kw["sasl_plain_username"] == "u" and kw["sasl_plain_password"] == "s3cret"
    assert kw["ssl_context"].check_hostname
    assert "s3cret" not in repr(s)
