"""cxstream: real-time Customer Experience Management on Apache Kafka.

The package stands on floors; each imports only from the floors below it (a unit test,
``tests/unit/test_layers.py``, keeps this):

- ``cli`` (the command line) and ``tools/`` (broker, produce, tail, simulator, demo, bench);
- ``app`` (the composition root: settings in, a wired Faust app out);
- ``api/`` (HTTP routes, auth, queries, the Prometheus collector);
- ``worker/`` (the Faust-bound hot path) and ``notify/`` (notifier, senders, routing file);
- ``kafka/`` (security, topics, admin, retry) and ``metrics`` (every metric, defined once);
- ``config/`` (settings, secrets, TLS);
- ``core/`` (pure, compiled by mypyc, no I/O).

``docs/development/architecture.md`` has the map and the rules.
"""

__version__ = "0.1.0"
