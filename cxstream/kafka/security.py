"""Kafka connection security: settings in, client arguments out, in one place.

Every Kafka client cxstream makes — aiokafka admin, producers and consumers, and Faust's own
(through ``broker_credentials``) — gets its TLS/SASL arguments from here, so a worker never
has one connection that forgot them. ``CXSTREAM_SECURITY_PROTOCOL=PLAINTEXT`` (the default)
adds nothing: clients are built exactly as before.

aiokafka only logs *why* a connection failed (``Unable connect to ...``) and then retries;
:func:`connection_problem` opens one connection itself to tell a wrong password or an untrusted
certificate — which no retry can fix — from a broker that is merely not up yet, so commands
fail fast with a message naming the setting to check.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING, Any

from cxstream.config.errors import SettingsError
from cxstream.config.tls import build_ssl_context, ssl_reason

if TYPE_CHECKING:
    from cxstream.config.settings import Settings


class KafkaAuthError(SettingsError):
    """Kafka refused cxstream's credentials or TLS setup; retrying cannot help. The message
    names the settings to check (a SettingsError, so the CLI prints it and exits 2)."""


def client_kwargs(settings: "Settings") -> dict[str, Any]:
    """Keyword arguments for any aiokafka client (admin, producer, consumer); empty for
    PLAINTEXT, so plaintext clients are built exactly as aiokafka's defaults make them."""
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return {}
    kwargs: dict[str, Any] = {"security_protocol": protocol}
    if protocol.endswith("SSL"):
        kwargs["ssl_context"] = build_ssl_context(settings)
    if protocol.startswith("SASL_"):
        kwargs.update(sasl_mechanism=settings.sasl_mechanism,
                      sasl_plain_username=settings.sasl_username,
                      sasl_plain_password=settings.sasl_password.reveal())
    return kwargs


def faust_credentials(settings: "Settings") -> Any:
    """Faust's ``broker_credentials`` for the same settings (None for PLAINTEXT).

    Faust's aiokafka driver turns these into the same aiokafka arguments as
    :func:`client_kwargs` for its consumer, producers and topic creation: SASLCredentials gives
    ``SASL_SSL`` when it has an SSL context and ``SASL_PLAINTEXT`` otherwise; SSLCredentials
    gives ``SSL`` with the context (client certificate included)."""
    import faust

    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = build_ssl_context(settings) if protocol.endswith("SSL") else None
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(username=settings.sasl_username,
                                 password=settings.sasl_password.reveal(),
                                 ssl_context=context, mechanism=settings.sasl_mechanism)


def describe(settings: "Settings") -> str:
    """How cxstream connects, for logs and errors — never the password."""
    protocol = settings.security_protocol
    parts = [protocol]
    if protocol.startswith("SASL_"):
        parts.append(f"{settings.sasl_mechanism} as {settings.sasl_username!r}")
    if protocol.endswith("SSL") and settings.ssl_certfile:
        parts.append("with a client certificate")
    return " ".join(parts)


def _hosts(settings: "Settings") -> list[tuple[str, int]]:
    hosts = []
    for part in settings.bootstrap.split(","):
        host, _, port = part.strip().rpartition(":")
        if host and port.isdigit():
            hosts.append((host.strip("[]"), int(port)))
    return hosts


async def connection_problem(settings: "Settings", timeout_s: float = 10.0) -> str | None:
    """Open one connection (with authentication) to each bootstrap server; return a message
    when one fails for a reason retrying cannot fix — wrong credentials, a SASL mechanism the
    listener does not enable, a certificate that is not trusted, TLS to a non-TLS port — or
    None (it worked, or the failure may be transient: nothing listens yet, a timeout)."""
    from aiokafka import errors
    from aiokafka.conn import create_conn

    kwargs = client_kwargs(settings)
    how = describe(settings)
    for host, port in _hosts(settings):
        where = f"{host}:{port}"
        try:
            conn = await asyncio.wait_for(
                create_conn(host, port, request_timeout_ms=int(timeout_s * 1000), **kwargs),
                timeout_s)
        except (errors.SaslAuthenticationFailed, errors.IllegalSaslStateError) as exc:
            return (f"Kafka at {where} rejected cxstream's authentication ({how}): {exc}. "
                    "Check CXSTREAM_SASL_USERNAME and the password in CXSTREAM_SASL_PASSWORD_FILE "
                    "(or CXSTREAM_SASL_PASSWORD), and that the user has "
                    f"{settings.sasl_mechanism} credentials on the cluster")
        except errors.UnsupportedSaslMechanismError as exc:
            return (f"Kafka at {where} does not accept CXSTREAM_SASL_MECHANISM="
                    f"{settings.sasl_mechanism} ({exc}); set it to one the listener enables")
        except ssl.SSLCertVerificationError as exc:
            return (f"the TLS certificate of Kafka at {where} was not accepted "
                    f"({exc.verify_message}): set CXSTREAM_SSL_CAFILE to the CA that signed it; "
                    "if only the host name does not match, fix the certificate's names "
                    "(CXSTREAM_SSL_CHECK_HOSTNAME=false is for labs only)")
        except ssl.SSLError as exc:
            return (f"the TLS handshake with Kafka at {where} failed ({ssl_reason(exc)}): is "
                    "that a TLS listener (CXSTREAM_SECURITY_PROTOCOL), and if it requires client "
                    "certificates, are CXSTREAM_SSL_CERTFILE and CXSTREAM_SSL_KEYFILE set?")
        except (OSError, asyncio.TimeoutError, errors.KafkaError):
            continue  # not up yet, unreachable, or closed on us: the caller's retry decides
        conn.close()
    return None
