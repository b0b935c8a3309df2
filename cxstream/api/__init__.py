"""The worker's HTTP API: routes, bearer-token auth, score queries across workers, and the
Prometheus collector behind ``/metrics``.

May import: ``cxstream.core``, ``cxstream.config``, ``cxstream.kafka``, ``cxstream.metrics``,
``cxstream.worker`` (to read the processor's state). Never ``cxstream.tools``.
"""
