"""The install compiles the core with mypyc (setup.py), and a failed compilation leaves the
plain Python core, whole, instead of a half-built one or a failed install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cxstream.core
from cxstream.core import step

ROOT = Path(__file__).resolve().parents[2]


def test_compiled_tells_which_core_runs() -> None:
    assert cxstream.core.compiled() is (not step.__file__.endswith(".py"))


def test_a_failed_compilation_leaves_no_compiled_module(tmp_path: Path) -> None:
    """With a compiler that always fails, the build succeeds without any extension (a shim
    left without its shared library would break every import) and says what to do."""
    env = {**os.environ, "CC": "false"}
    done = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--build-lib", str(tmp_path / "lib"),
         "--build-temp", str(tmp_path / "temp")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "the core is NOT compiled" in done.stderr
    assert "install a C compiler and the Python headers" in done.stderr
    assert not list((tmp_path / "lib").rglob("*.so"))


def test_compile_can_be_turned_off(tmp_path: Path) -> None:
    env = {**os.environ, "CXSTREAM_COMPILE": "0"}
    done = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--build-lib", str(tmp_path / "lib")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "CXSTREAM_COMPILE=0" in done.stderr
    assert not list(tmp_path.rglob("*.so"))


def test_every_build_compiles_the_whole_core(tmp_path: Path) -> None:
    """A second build compiles the core again: with the mypy cache of the first one, mypyc
    used to give the shared library no C source, and the core then failed to import. Compiles
    twice for real (about 30 s)."""
    for n in (1, 2):
        lib = tmp_path / f"lib{n}"
        done = subprocess.run(
            [sys.executable, "setup.py", "build_ext", "--build-lib", str(lib),
             "--build-temp", str(tmp_path / f"temp{n}")],
            cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0 and "NOT compiled" not in done.stderr, done.stderr[-2000:]
        (shared,) = (lib / "cxstream" / "core").glob("native__mypyc.*")
        code = shared.read_bytes()
        for name in ("step", "journey", "decode", "expiry"):
            assert f"CPyInit_cxstream___core___{name}".encode() in code, (n, name)
