"""The pure core: decoding, validation, scoring, windows, segments, journeys.

Nothing in this package performs I/O, reads the clock or the environment, or imports
Faust/aiokafka/aiohttp/prometheus_client: time and settings come in as arguments, so every
rule here is tested exhaustively in milliseconds against brute-force oracles.

The modules that run for every event are compiled by mypyc when cxstream is installed
(setup.py); the Python source stays the reference, and behaves the same.

May import: nothing outside ``cxstream.core`` (the standard library and orjson only).
"""

from __future__ import annotations

from importlib import import_module
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path


def compiled() -> bool:
    """Whether the core runs compiled by mypyc (setup.py), or as plain Python."""
    return not (import_module("cxstream.core.step").__file__ or "").endswith(".py")


def stale() -> list[str]:
    """The compiled modules older than their Python source, which Python would still import
    instead of it: in a checkout installed in place (`pip install -e`), after editing the
    source without installing again. Only meaningful there: unpacking a wheel may give the
    source a later time than the compiled module."""
    here = Path(__file__).parent
    found = []
    for source in sorted(here.glob("*.py")):
        for suffix in EXTENSION_SUFFIXES:
            built = source.with_name(source.stem + suffix)
            if built.exists() and built.stat().st_mtime < source.stat().st_mtime:
                found.append(source.stem)
    return found
