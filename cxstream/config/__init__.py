"""Configuration every layer reads: the typed settings, secrets and the TLS context.

May import: ``cxstream.core`` only (and the standard library, aiokafka's TLS helper).
"""
