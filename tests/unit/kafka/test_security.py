"""Kafka security settings: validation at load time, secrets kept out of reprs, and the client
arguments / Faust credentials they turn into. (The real TLS + SCRAM broker is exercised by
tests/integration/test_kafka_security.py.)"""

from __future__ import annotations

from pathlib import Path

import faust
import pytest

from cxstream.kafka.security import client_kwargs, describe, faust_credentials
from cxstream.config.settings import Settings, SettingsError

SASL = {"CXSTREAM_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "CXSTREAM_SASL_USERNAME": "cx"}


def test_plaintext_default_adds_nothing() -> None:
    s = Settings.from_env({})
    assert s.security_protocol == "PLAINTEXT" and s.sasl_mechanism == "SCRAM-SHA-512"
    assert s.ssl_check_hostname is True
    assert client_kwargs(s) == {} and faust_credentials(s) is None


def test_sasl_password_from_env_is_never_shown() -> None:
    s = Settings.from_env({**SASL, "CXSTREAM_SASL_PASSWORD": "hunter2-secret"})
    assert "hunter2-secret" not in repr(s) and "hunter2-secret" not in str(s)
    assert "hunter2-secret" not in describe(s)
    kw = client_kwargs(s)
    assert kw == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                  "sasl_plain_username": "cx", "sasl_plain_password": "hunter2-secret"}
    creds = faust_credentials(s)
    assert isinstance(creds, faust.SASLCredentials) and creds.password == "hunter2-secret"
    assert creds.protocol.value == "SASL_PLAINTEXT" and creds.mechanism.value == "SCRAM-SHA-512"
    assert "hunter2-secret" not in repr(creds)


def test_password_file_loses_one_trailing_newline(tmp_path: Path) -> None:
    f = tmp_path / "pw"
    f.write_text("p@ss word \n")
    s = Settings.from_env({**SASL, "CXSTREAM_SASL_PASSWORD_FILE": str(f),
                           "CXSTREAM_SASL_MECHANISM": "scram-sha-256"})
    assert s.sasl_password.reveal() == "p@ss word " and s.sasl_mechanism == "SCRAM-SHA-256"


def test_faust_app_gets_the_credentials() -> None:
    from cxstream.app import create_app

    app = create_app(Settings.from_env({**SASL, "CXSTREAM_SASL_PASSWORD": "x",
                                        "CXSTREAM_SASL_MECHANISM": "PLAIN"}))
    creds = app.conf.broker_credentials
    assert isinstance(creds, faust.SASLCredentials) and creds.mechanism.value == "PLAIN"
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    assert credentials_to_aiokafka_auth(creds)["security_protocol"] == "SASL_PLAINTEXT"


@pytest.mark.parametrize(("env", "names"), [
    ({"CXSTREAM_SECURITY_PROTOCOL": "TLS"}, ["CXSTREAM_SECURITY_PROTOCOL"]),
    ({**SASL, "CXSTREAM_SASL_MECHANISM": "GSSAPI"}, ["CXSTREAM_SASL_MECHANISM"]),
    ({"CXSTREAM_SECURITY_PROTOCOL": "SASL_SSL", "CXSTREAM_SASL_PASSWORD": "x"},
     ["CXSTREAM_SASL_USERNAME"]),
    (SASL, ["CXSTREAM_SASL_PASSWORD_FILE"]),
    ({**SASL, "CXSTREAM_SASL_PASSWORD": "x", "CXSTREAM_SASL_PASSWORD_FILE": "/etc/hostname"},
     ["CXSTREAM_SASL_PASSWORD", "CXSTREAM_SASL_PASSWORD_FILE"]),
    ({**SASL, "CXSTREAM_SASL_PASSWORD_FILE": "/nonexistent/pw"}, ["CXSTREAM_SASL_PASSWORD_FILE"]),
    ({"CXSTREAM_SASL_USERNAME": "cx"}, ["CXSTREAM_SASL_USERNAME", "CXSTREAM_SECURITY_PROTOCOL"]),
    ({"CXSTREAM_SSL_CAFILE": "/etc/hostname"}, ["CXSTREAM_SSL_CAFILE", "SSL"]),
    ({"CXSTREAM_SECURITY_PROTOCOL": "SSL", "CXSTREAM_SSL_KEYFILE": "/etc/hostname"},
     ["CXSTREAM_SSL_KEYFILE", "CXSTREAM_SSL_CERTFILE"]),
    ({"CXSTREAM_SECURITY_PROTOCOL": "SSL", "CXSTREAM_SSL_CAFILE": "/nonexistent/ca.pem"},
     ["CXSTREAM_SSL_CAFILE", "cannot be read"]),
    ({"CXSTREAM_SECURITY_PROTOCOL": "SSL", "CXSTREAM_SSL_CAFILE": "/etc/hostname"},
     ["CXSTREAM_SSL_CAFILE", "PEM"]),
    ({"CXSTREAM_SECURITY_PROTOCOL": "SSL", "CXSTREAM_SSL_CHECK_HOSTNAME": "maybe"},
     ["CXSTREAM_SSL_CHECK_HOSTNAME"]),
])
def test_misconfiguration_names_the_variable(env: dict[str, str], names: list[str]) -> None:
    with pytest.raises(SettingsError) as exc:
        Settings.from_env(env)
    for name in names:
        assert name in str(exc.value)


def test_empty_password_file_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "pw"
    f.write_text("\n")
    with pytest.raises(SettingsError, match="CXSTREAM_SASL_PASSWORD_FILE=.* is empty"):
        Settings.from_env({**SASL, "CXSTREAM_SASL_PASSWORD_FILE": str(f)})


def test_ssl_with_system_trust_store_and_no_hostname_check() -> None:
    s = Settings.from_env({"CXSTREAM_SECURITY_PROTOCOL": "SSL",
                           "CXSTREAM_SSL_CHECK_HOSTNAME": "false"})
    kw = client_kwargs(s)
    assert kw["security_protocol"] == "SSL" and not kw["ssl_context"].check_hostname
    assert isinstance(faust_credentials(s), faust.SSLCredentials)
