"""Builds cxstream, compiling the pure core (`cxstream.core`) with mypyc.

Why: the core plans every event, and compiled it runs faster, so the worker keeps up with
more events per second (docs/performance.md, docs/development/compiled-core.md). The compiled
modules behave exactly as the Python source, which stays the reference: the same tests
run against either.

The build falls back to plain Python, with a warning, when it cannot compile (no C
compiler or Python headers, or `CXSTREAM_COMPILE=0`): cxstream then works the same, only
slower. `python -c "import cxstream.core as c; print(c.compiled())"` tells which one runs.
Everything else (metadata, dependencies) is in pyproject.toml.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

#: The modules compiled: those that run for every event. The rest of the core (errors,
#: notification, deadletter) stays Python: it runs only for a rejected event or an alert
#: sent, and mypyc does not compile errors' Enum.
COMPILED = ["step", "journey", "decode", "fieldrules", "dupkeys", "batch", "store", "model",
            "caps", "buckets", "timefmt", "segments", "scoring", "keys", "windows", "alert",
            "expiry"]
#: Name of the shared library holding the compiled modules (inside `cxstream.core`).
GROUP = "cxstream.core.native"
#: The setup commands that build extensions: mypyc runs only for those (a PEP 517 build
#: runs this file for its metadata hooks too, which need no C).
BUILDS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install"}


_NO_COMPILER = ("install a C compiler and the Python headers (Debian: gcc, python3-dev), "
                "then install cxstream again")


def _warn(why: str, fix: str = _NO_COMPILER) -> None:
    print(f"cxstream: the core is NOT compiled ({why}); it runs as plain Python, the same "
          f"but slower. To compile it: {fix}.", file=sys.stderr)


class OptionalBuildExt(build_ext):
    """build_ext that leaves no half-built core: any failure removes every compiled module
    (a shim without its shared library would not even import) and keeps the Python ones."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - distutils raises a handful of types
            for ext in self.extensions:
                Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
            _warn(f"{type(exc).__name__}: {exc}")


def _extensions() -> list:
    if not BUILDS.intersection(sys.argv[1:]):
        return []  # metadata only
    if os.environ.get("CXSTREAM_COMPILE", "1") == "0":
        _warn("CXSTREAM_COMPILE=0", "unset CXSTREAM_COMPILE")
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _warn("mypyc is not installed", "install mypy (it brings mypyc), or let pip build "
              "in an isolated environment, which installs it")
        return []
    paths = [f"cxstream/core/{name}.py" for name in COMPILED]
    # A fresh mypy cache each time: with one from an earlier build, mypyc finds every module
    # "fresh" and gives the shared library no C source at all; the build then links an
    # empty library, and importing the core fails.
    try:
        with tempfile.TemporaryDirectory(prefix="cxstream-mypy-") as cache:
            return mypycify([f"--cache-dir={cache}", *paths], separate=[(paths, GROUP)],
                            opt_level="3")
    except (Exception, SystemExit) as exc:  # mypyc exits on a type error in the core
        _warn(f"mypyc failed: {exc!r}", "fix the errors mypyc printed above (`python -m mypy "
              "cxstream/core` shows them)")
        return []


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
