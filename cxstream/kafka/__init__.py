"""Kafka plumbing every client shares: connection security, topic names, topic creation and
the retry of a record the broker did not acknowledge.

May import: ``cxstream.core``, ``cxstream.config``, ``cxstream.metrics``.
"""
