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


def build_ext(lib: Path, temp: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`setup.py build_ext` of the checkout into `lib` (build files in `temp`), with `env`
    added to the environment; fails the test unless the build itself succeeds."""
    done = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--build-lib", str(lib), "--build-temp",
         str(temp)], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
        timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_a_failed_compilation_leaves_no_compiled_module(tmp_path: Path) -> None:
    """With a compiler that always fails, the build succeeds without any extension (a shim
    left without its shared library would break every import) and says what to do."""
    done = build_ext(tmp_path / "lib", tmp_path / "temp", CC="false")
    assert "the core is NOT compiled" in done.stderr
    assert "install a C compiler and the Python headers" in done.stderr
    assert not list((tmp_path / "lib").rglob("*.so"))


def test_compile_can_be_turned_off(tmp_path: Path) -> None:
    done = build_ext(tmp_path / "lib", tmp_path / "temp", CXSTREAM_COMPILE="0")
    assert "CXSTREAM_COMPILE=0" in done.stderr
    assert not list(tmp_path.rglob("*.so"))


def test_every_build_compiles_the_whole_core(tmp_path: Path) -> None:
    """A second build compiles the core again: with the mypy cache of the first one, mypyc
    used to give the shared library no C source, and the core then failed to import. Compiles
    twice for real (about 30 s)."""
    for n in (1, 2):
        lib = tmp_path / f"lib{n}"
        done = build_ext(lib, tmp_path / f"temp{n}")
        assert "NOT compiled" not in done.stderr, done.stderr[-2000:]
        (shared,) = (lib / "cxstream" / "core").glob("native__mypyc.*")
        code = shared.read_bytes()
        for name in ("step", "journey", "decode", "expiry"):
            assert f"CPyInit_cxstream___core___{name}".encode() in code, (n, name)
