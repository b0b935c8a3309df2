"""The client TLS context built from the ``CXSTREAM_SSL_*`` settings.

Settings build it once at load time, so a certificate problem stops the process before any
connection with a message naming the setting; Kafka clients build it again from the same
settings (``cxstream.kafka.security``).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

from cxstream.config.errors import SettingsError
from cxstream.config.secrets import read_secret


def _get(cfg: Any, name: str) -> Any:
    """A setting from a Settings object or from the values a Settings is being built from."""
    return cfg[name] if isinstance(cfg, Mapping) else getattr(cfg, name)


def build_ssl_context(cfg: Any) -> ssl.SSLContext:
    """A client TLS context from the ``CXSTREAM_SSL_*`` settings (aiokafka's helper: TLS
    verification and hostname checks on). Raises SettingsError naming the setting whose file
    could not be used."""
    from aiokafka.helpers import create_ssl_context

    cafile = _get(cfg, "ssl_cafile") or None
    certfile = _get(cfg, "ssl_certfile") or None
    keyfile = _get(cfg, "ssl_keyfile") or None
    key_password_file = _get(cfg, "ssl_key_password_file")
    password = None
    if key_password_file:
        password = read_secret("CXSTREAM_SSL_KEY_PASSWORD_FILE", key_password_file)
    try:
        context = create_ssl_context(cafile=cafile)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise SettingsError(f"CXSTREAM_SSL_CAFILE={cafile} holds no usable CA certificate "
                            f"({ssl_reason(exc)}): it must be PEM") from None
    if certfile:
        try:
            context.load_cert_chain(certfile, keyfile, password)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise SettingsError(
                f"the client certificate CXSTREAM_SSL_CERTFILE={certfile} and key "
                f"CXSTREAM_SSL_KEYFILE={keyfile or '(in the certificate file)'} cannot be used "
                f"({ssl_reason(exc)}): both must be PEM, the key must belong to the certificate, "
                "and an encrypted key needs CXSTREAM_SSL_KEY_PASSWORD_FILE") from None
    if not _get(cfg, "ssl_check_hostname"):
        context.check_hostname = False  # the chain is still verified against the CA
    return context


def ssl_reason(exc: BaseException) -> str:
    """A short reason for an SSL or OS error, for messages (never the file's content)."""
    return getattr(exc, "reason", None) or getattr(exc, "strerror", None) or type(exc).__name__
