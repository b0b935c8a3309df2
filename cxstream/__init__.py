"""cxstream: real-time Customer Experience Management on Apache Kafka."""

__version__ = "0.1.0"
