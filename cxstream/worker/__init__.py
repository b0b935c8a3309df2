"""The worker's hot path, bound to Faust: the processor, the batching consumer below Faust's
streams, the changelog writer, the recovery and gap watches, the Faust patches and GC tuning.

May import: ``cxstream.core``, ``cxstream.config``, ``cxstream.kafka``, ``cxstream.metrics``.
Never ``cxstream.tools``, ``cxstream.api`` or ``cxstream.notify``.
"""
