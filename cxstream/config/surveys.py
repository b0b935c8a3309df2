"""Read the survey program registry (`CXSTREAM_SURVEYS`, TOML) into a `Registry`.

Format (docs/concepts/programs.md; `deploy/surveys.example.toml` is a complete file):

    [programs.csat-delivery]
    metric = "csat"          # nps | csat | ces
    scale = [1, 10]          # integers; nps is always [0, 10]; csat and ces default [1, 5]
    satisfied = [8, 10]      # csat: default the top two points of the scale
    target = 80              # optional

    [programs.ces-checkout]
    metric = "ces"
    scale = [1, 7]
    high_effort = [1, 2]     # here 1 is the most effort (default: the top two points)

The rules of one program are `cxstream.core.programs.define`'s; this module adds the file's
own: only ``[programs.<id>]`` tables, only the keys a program takes, each id once, and at
most `CXSTREAM_MAX_PROGRAMS` programs.

Decisions:

* **The built-in programs `nps`, `csat` and `ces` always stay**, with or without a file: a
  file adds programs to them. Producers that send ``"survey": "nps"`` today, the state kept
  for the built-ins and dashboards built on them keep working when a team starts a registry,
  and nothing is lost if a file forgets one. A built-in the file never receives answers for
  costs nothing. A file may list a built-in's id to give it a target, other ranges or
  ``turns = false``, but with its metric and scale unchanged (csat 1..5, ...): its data and
  its producers depend on them, so another scale needs another id.
* **`CXSTREAM_MAX_PROGRAMS` bounds the whole registry, the built-ins included**: what it
  protects (counters kept per program, label values on the metrics) grows with every
  program, built-in or not.
* **Every problem is listed, each once, in one error** (`SurveysError`, a `SettingsError`:
  the command line prints it on one line and exits 2, and a worker never starts on a
  registry it cannot read). A file that is not valid TOML cannot be judged further: then the
  error is that (for a program id defined twice, which TOML itself refuses, every such id
  with its lines).
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path
from typing import Any, Mapping, Sequence

from cxstream.config.errors import SettingsError
from cxstream.core.programs import (
    BUILTINS,
    FIELDS,
    Program,
    ProgramError,
    Registry,
    define,
    valid_id,
)

__all__ = ["MAX_FILE_BYTES", "SHOWN_PROBLEMS", "SurveysError", "load", "parse", "registry"]

#: A registry of the most programs anyone runs is a few kilobytes: a larger file is not a
#: registry (and a device such as /dev/zero would never end), so reading stops there.
MAX_FILE_BYTES = 1 << 20
#: Problems spelled out in one error; the rest are counted (the error stays one line).
SHOWN_PROBLEMS = 20
_SETTING = "CXSTREAM_SURVEYS"
#: A table header [programs.<id>], the id bare or quoted (for naming the lines of a
#: program defined twice).
_HEADER = re.compile(r"""^\s*\[\s*programs\s*\.\s*(?:"([^"\\]*)"|'([^']*)'|([A-Za-z0-9_-]+))"""
                     r"""\s*\]\s*(?:#.*)?$""")
_TWICE = re.compile(r"^Cannot declare \('programs', '([^']*)'\) twice \(at line (\d+)")


class SurveysError(SettingsError):
    """The registry file cannot be used; `problems` lists every problem found, each message
    naming where and what to do."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        shown = self.problems[:SHOWN_PROBLEMS]
        more = len(self.problems) - len(shown)
        if len(shown) == 1:
            text = shown[0]
        else:
            text = f"{len(self.problems)} problems: " + "; ".join(
                f"({n}) {p}" for n, p in enumerate(shown, 1))
        if more:
            text += f"; and {more} more (fix these first)"
        super().__init__(f"{source}: {text}")


def registry(path: str | Path, max_programs: int) -> Registry:
    """The registry of the settings `CXSTREAM_SURVEYS` (`path`; empty: the built-ins only)
    and `CXSTREAM_MAX_PROGRAMS`. Raises `SurveysError` listing every problem."""
    if max_programs < len(BUILTINS):
        raise SurveysError(f"CXSTREAM_MAX_PROGRAMS={max_programs}", [
            f"must be at least {len(BUILTINS)}: the built-in programs always count"])
    if not str(path).strip():
        return BUILTINS
    return load(Path(path), max_programs)


def load(path: Path, max_programs: int) -> Registry:
    """The registry of the file at `path`: the built-ins and the file's programs."""
    source = f"{_SETTING}={path}"
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SurveysError(source, [
            f"cannot read the registry file ({exc.strerror or type(exc).__name__}): check "
            f"the path, or leave {_SETTING} empty for the built-in programs only"]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise SurveysError(source, [
            f"over {MAX_FILE_BYTES} bytes, far more than any registry: check that "
            f"{_SETTING} names the registry file"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SurveysError(source, [f"not UTF-8 text (byte {exc.start}): save the file as "
                                    "UTF-8"]) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SurveysError(source, _toml_problems(text, str(exc))) from None
    return parse(doc, max_programs, source)


def _toml_problems(text: str, message: str) -> list[str]:
    """Why `text` is not a TOML document, in words that say what to do: every program id
    defined more than once (TOML refuses that, saying so less plainly), else tomllib's
    `message`."""
    lines: dict[str, list[int]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = _HEADER.match(line)
        if match:
            key = next(group for group in match.groups() if group is not None)
            lines.setdefault(key, []).append(number)
    twice = {key: at for key, at in lines.items() if len(at) > 1}
    match = _TWICE.match(message)
    if match and match.group(1) not in twice:  # the other one is not a [programs.<id>] line
        twice[match.group(1)] = [int(match.group(2))]
    if not twice:
        return [f"not valid TOML ({message}): fix the file (see docs/concepts/programs.md)"]
    return [f"program {_quoted(key)} is defined more than once (line{'s' * (len(at) > 1)} "
            f"{', '.join(map(str, at))}): each program id may appear once; keep one "
            "definition, or give the other program an id of its own"
            for key, at in twice.items()]


def parse(doc: Mapping[str, Any], max_programs: int, source: str = _SETTING) -> Registry:
    """The registry of a registry file's TOML document: the built-ins, and the programs of
    `doc` in their place where it lists a built-in's id. Raises `SurveysError` (naming
    `source`) listing every problem, at most one per key."""
    problems = [f"{_quoted(key)}: unknown top-level key: remove it (a registry file holds "
                "only [programs.<id>] tables)" for key in doc if key != "programs"]
    tables = doc.get("programs", {})
    if not isinstance(tables, dict):
        problems.append("programs: must be tables: write [programs.<id>] with the "
                        "program's keys under it")
        tables = {}
    programs: list[Program] = []
    for key, table in tables.items():
        program = _program(key, table, problems)
        if program is not None:
            programs.append(program)
    count = len(set(BUILTINS.ids) | set(tables))
    if count > max_programs:
        problems.append(_too_many(count, len(tables), max_programs))
    if problems:
        raise SurveysError(source, problems)
    given = {p.id: p for p in programs}
    return Registry([given.get(p.id, p) for p in BUILTINS]
                    + [p for p in programs if p.id not in BUILTINS])


def _program(key: str, table: Any, problems: list[str]) -> Program | None:
    """The program `[programs.<key>]`, or None after adding its problems to `problems`."""
    where = f"programs.{key}" if valid_id(key) else f"programs.{_quoted(key)}"
    if not isinstance(table, dict):
        problems.append(f"{where}: must be a table: write [{where}] with metric = ... "
                        "under it")
        return None
    before = len(problems)
    for name in table:
        if name not in FIELDS:
            close = difflib.get_close_matches(name, FIELDS, n=1)
            fix = f"did you mean {close[0]}? Else remove it" if close else "remove it"
            problems.append(f"{where}.{_quoted(name)}: unknown key: {fix} (a program takes "
                            f"{', '.join(FIELDS)})")
    try:
        program = define(key, table.get("metric"), **{f: table.get(f) for f in FIELDS[1:]})
    except ProgramError as exc:
        problems.extend(f"{where}: {text}" if name == "id" else f"{where}.{name}: {text}"
                        for name, text in exc.problems)
        return None
    builtin = BUILTINS.get(key)
    if builtin is not None and builtin.fingerprint != program.fingerprint:
        low, high = program.scale
        problems.append(
            f"{where}: {key} is a built-in program ({builtin.fingerprint}) and keeps its "
            f"metric and scale, which its producers and its data rely on; a file may only "
            f"change its ranges, target or turns: give a {program.fingerprint} program "
            f"an id of its own, e.g. {program.metric}-{low}-{high}")
    return program if len(problems) == before else None


def _quoted(key: str) -> str:
    """A key as TOML writes it: bare when it can be, else quoted (and short)."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", key):
        return key
    shown = key if len(key) <= 40 else key[:37] + "..."
    return '"' + shown.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


def _too_many(count: int, in_file: int, max_programs: int) -> str:
    return (f"the registry would hold {count} programs (the file's {in_file} and the "
            f"built-ins it does not list), over CXSTREAM_MAX_PROGRAMS="
            f"{max_programs}: remove programs, or raise CXSTREAM_MAX_PROGRAMS (each program "
            "adds counters to the state and series to the metrics)")
