"""The local broker's one exception, `BrokerError`, raised by each of its parts (provisioning
the jars, starting the JVM, waiting until a broker is ready), so that the CLI, the demo and
the tests catch a single class whose message always says what to do.
"""

from __future__ import annotations


class BrokerError(RuntimeError):
    """The broker cannot be provisioned, started or reached; the message says what to do."""
