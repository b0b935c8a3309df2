"""The pure core: decoding, validation, scoring, windows, segments, journeys.

Nothing in this package performs I/O, reads the clock or the environment, or imports
Faust/aiokafka/aiohttp/prometheus_client: time and settings come in as arguments, so every
rule here is tested exhaustively in milliseconds against brute-force oracles.
"""
