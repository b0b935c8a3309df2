"""The registry file (`CXSTREAM_SURVEYS`): valid files give exactly their programs beside the
built-ins; every problem gets one message naming where and what to do, all of them in one
one-line error the command line prints; the example file and the docs' examples load."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxstream.cli import friendly
from cxstream.config import surveys
from cxstream.config.errors import SettingsError
from cxstream.config.settings import Settings
from cxstream.config.surveys import MAX_FILE_BYTES, SHOWN_PROBLEMS, SurveysError, load, parse
from cxstream.core.programs import BUILTINS, FIELDS, Registry, define

from ..core import test_programs as programs

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "deploy" / "surveys.example.toml"
PAGE = ROOT / "docs" / "concepts" / "programs.md"
#: Words that say what to do; every message holds one.
FIXES = re.compile(r"\b(remove|write|use|set|keep|give|leave|fix|check|save|raise|merge)\b")
NOT_BUILTIN = programs.IDS.filter(lambda i: i not in BUILTINS)


def toml_value(value: Any) -> str:
    """`value` written in TOML (the subset a registry file uses)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(f"\\u{ord(c):04x}" if c < " " or c in '\x7f"\\' else c
                             for c in value) + '"'
    return "[" + ", ".join(toml_value(v) for v in value) + "]"


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_value(key)


def toml(*definitions: dict[str, Any]) -> str:
    """A registry file holding `definitions` (as `programs.definitions` draws them)."""
    out = []
    for d in definitions:
        out.append(f"[programs.{toml_key(d['id'])}]")
        out += [f"{k} = {toml_value(v)}" for k, v in d.items() if k != "id"]
        out.append("")
    return "\n".join(out)


def problems_of(tmp_path: Path, text: str | bytes, max_programs: int = 50) -> tuple[str, ...]:
    path = tmp_path / "surveys.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(SurveysError) as exc:
        load(path, max_programs)
    message = str(exc.value)
    assert "\n" not in message and message.startswith(f"CXSTREAM_SURVEYS={path}: ")
    for problem in exc.value.problems:
        assert FIXES.search(problem), f"says not what to do: {problem}"
        assert problem in message or len(exc.value.problems) > SHOWN_PROBLEMS
    return exc.value.problems


def one_problem(tmp_path: Path, text: str | bytes, max_programs: int = 50) -> str:
    (problem,) = problems_of(tmp_path, text, max_programs)
    return problem


# -- valid files ---------------------------------------------------------------------------


def test_without_a_file_the_builtins_stand_alone() -> None:
    assert surveys.registry("", 50) is BUILTINS
    assert surveys.registry(Settings.from_env({}).surveys, 3) is BUILTINS
    assert parse({}, 3) == BUILTINS and parse({"programs": {}}, 3) == BUILTINS


def test_the_example_file_is_the_issues_registry() -> None:
    reg = surveys.registry(str(EXAMPLE), 50)
    assert reg.ids == ("ces", "ces-checkout", "ces-returns", "csat", "csat-app",
                       "csat-delivery", "nps", "rnps", "tnps-support")
    assert reg["csat-delivery"] == define("csat-delivery", "csat", scale=[1, 10],
                                          satisfied=[8, 10], target=80)
    assert reg["rnps"].target == 50 and reg["rnps"].turns and not reg["tnps-support"].turns
    assert reg["ces-checkout"].effort_at_top and not reg["ces-returns"].effort_at_top
    assert reg["csat-app"].satisfied == (4, 5)
    for p in BUILTINS:
        assert reg[p.id] is p


def test_every_registry_file_in_the_docs_page_loads(tmp_path: Path) -> None:
    blocks = re.findall(r"^```toml\n(.*?)^```", PAGE.read_text(), flags=re.M | re.S)
    assert blocks
    for n, block in enumerate(blocks):
        path = tmp_path / f"{n}.toml"
        path.write_text(block)
        assert len(load(path, 50)) >= len(BUILTINS)


def test_the_docs_worked_example_reads_answers_as_the_code_does(tmp_path: Path) -> None:
    text = PAGE.read_text().split("## Worked example", 1)[1]
    path = tmp_path / "example.toml"
    path.write_text(re.search(r"^```toml\n(.*?)^```", text, flags=re.M | re.S).group(1))
    reg = load(path, 50)
    rows = re.findall(r"^\| `([a-z-]+)`[^|]* \| (\d+) \| (.+?) \|$", text, flags=re.M)
    assert len(rows) == 9
    for pid, answer, reading in rows:
        p, score = reg[pid], int(answer)
        if reading.startswith("outside the scale"):
            assert not p.in_scale(score) and reading.endswith(f"{p.scale[0]}–{p.scale[1]}")
        elif p.metric == "nps":
            assert p.category(score) == reading
        elif p.metric == "csat":
            assert p.is_satisfied(score) == reading.startswith("satisfied")
        else:
            assert p.is_high_effort(score) == reading.startswith("high effort")


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(programs.definitions(NOT_BUILTIN), max_size=6, unique_by=lambda d: d["id"]))
def test_any_valid_file_gives_exactly_its_programs(tmp_path: Path,
                                                   ds: list[dict[str, Any]]) -> None:
    path = tmp_path / "surveys.toml"
    path.write_text(toml(*ds))
    reg = load(path, 50)
    assert reg == Registry([*BUILTINS, *(programs.build(d) for d in ds)])
    assert reg.ids == tuple(sorted(reg.ids))


def test_a_builtin_may_get_a_target_ranges_or_turns(tmp_path: Path) -> None:
    path = tmp_path / "surveys.toml"
    path.write_text('[programs.nps]\nmetric = "nps"\ntarget = 50\nturns = false\n'
                    '[programs.csat]\nmetric = "csat"\nsatisfied = [5, 5]\n')
    reg = load(path, 3)
    assert (reg["nps"].target, reg["nps"].turns, reg["csat"].satisfied) == (50, False, (5, 5))
    assert reg["ces"] is BUILTINS["ces"] and len(reg) == 3


def test_max_programs_counts_the_whole_registry(tmp_path: Path) -> None:
    text = toml(*({"id": f"p{n}", "metric": "nps"} for n in range(7)))
    path = tmp_path / "surveys.toml"
    path.write_text(text)
    assert len(load(path, 10)) == 10
    problem = one_problem(tmp_path, text, 9)
    assert "would hold 10 programs" in problem and "CXSTREAM_MAX_PROGRAMS=9" in problem
    # a built-in the file lists is no extra program
    path.write_text(text + '[programs.nps]\nmetric = "nps"\ntarget = 0\n')
    assert len(load(path, 10)) == 10


# -- one message per problem ---------------------------------------------------------------

CASES = [
    # (file, where the problem is, a phrase of its message)
    ('[programs.a]\nmetric = "nps"\nscael = [0, 10]\n', "programs.a.scael",
     "unknown key: did you mean scale? Else remove it"),
    ('[programs.a]\nmetric = "nps"\ncolour = "red"\n', "programs.a.colour",
     "unknown key: remove it"),
    ('title = "x"\n[programs.a]\nmetric = "nps"\n', "title", "unknown top-level key"),
    ('programs = 3\n', "programs", "must be tables"),
    ('programs.a = 3\n', "programs.a", "must be a table"),
    ('[programs.a]\nmetric = "nsp"\n', "programs.a.metric", "is not a metric"),
    ('[programs.a]\nscale = [1, 5]\n', "programs.a.metric", "missing"),
    ('[programs.a]\nmetric = "csat"\nscale = []\n', "programs.a.scale", "is not a scale"),
    ('[programs.a]\nmetric = "csat"\nscale = [1.0, 5.0]\n', "programs.a.scale",
     "is not a scale"),
    ('[programs.a]\nmetric = "csat"\nscale = [10, 1]\n', "programs.a.scale",
     "is inverted: write the low end first, [1, 10]"),
    ('[programs.a]\nmetric = "csat"\nscale = [3, 3]\n', "programs.a.scale", "has one point"),
    ('[programs.a]\nmetric = "ces"\nscale = [0, 1000]\n', "programs.a.scale",
     "keep the ends of a scale within -100..100"),
    ('[programs.a]\nmetric = "nps"\nscale = [1, 10]\n', "programs.a.scale",
     "nps programs always use the scale [0, 10]"),
    ('[programs.a]\nmetric = "csat"\nscale = [1, 10]\nsatisfied = [8, 11]\n',
     "programs.a.satisfied", "lies outside the scale [1, 10]"),
    ('[programs.a]\nmetric = "csat"\nsatisfied = [5, 4]\n', "programs.a.satisfied",
     "is inverted"),
    ('[programs.a]\nmetric = "ces"\nscale = [1, 7]\nhigh_effort = [3, 5]\n',
     "programs.a.high_effort", "reaches neither end of the scale [1, 7]"),
    ('[programs.a]\nmetric = "ces"\nhigh_effort = [1, 5]\n', "programs.a.high_effort",
     "covers the whole scale"),
    ('[programs.a]\nmetric = "csat"\nscale = [0, 1]\n', "programs.a.satisfied",
     "the default (the top two points) would cover the whole scale [0, 1]"),
    ('[programs.a]\nmetric = "nps"\nsatisfied = [9, 10]\n', "programs.a.satisfied",
     "applies to csat programs only"),
    ('[programs.a]\nmetric = "csat"\nhigh_effort = [4, 5]\n', "programs.a.high_effort",
     "applies to ces programs only"),
    ('[programs.a]\nmetric = "nps"\ntarget = 120\n', "programs.a.target",
     "120 is outside -100..100"),
    ('[programs.a]\nmetric = "csat"\ntarget = -1\n', "programs.a.target",
     "-1 is outside 0..100"),
    ('[programs.a]\nmetric = "ces"\nscale = [1, 7]\ntarget = 7.5\n', "programs.a.target",
     "7.5 is outside 1..7"),
    ('[programs.a]\nmetric = "nps"\ntarget = "50"\n', "programs.a.target", "is not a number"),
    ('[programs.a]\nmetric = "nps"\ntarget = nan\n', "programs.a.target", "is not a number"),
    ('[programs.a]\nmetric = "csat"\nturns = true\n', "programs.a.turns",
     "applies to nps programs only"),
    ('[programs.a]\nmetric = "nps"\nturns = "yes"\n', "programs.a.turns",
     "is not true or false"),
    ('[programs.CSAT]\nmetric = "csat"\n', "programs.CSAT", "is not a program id"),
    ('[programs."csat delivery"]\nmetric = "csat"\n', 'programs."csat delivery"',
     "is not a program id"),
    ('[programs.csat]\nmetric = "csat"\nscale = [1, 10]\n', "programs.csat",
     "csat is a built-in program (csat 1..5)"),
    ('[programs.nps]\nmetric = "csat"\nscale = [0, 10]\n', "programs.nps",
     "nps is a built-in program (nps 0..10)"),
    ('[programs.a]\nmetric = "nps"\n\n[programs.a]\nmetric = "csat"\n', "program a",
     "is defined more than once (lines 1, 4)"),
    ('[programs.a]\nmetric = "nps"\n[programs."a"]\nmetric = "csat"\n', "program a",
     "is defined more than once (lines 1, 3)"),
    ('programs.a.metric = "nps"\n[programs.a]\nmetric = "csat"\n', "program a",
     "is defined more than once (line 2)"),
    ('[programs.a]\nmetric = "nps"\nmetric = "csat"\n', "not valid TOML",
     "Cannot overwrite a value"),
    ('[programs.a\n', "not valid TOML", "fix the file"),
    (b'[programs.a]\nmetric = "nps"\n# caf\xe9\n', "not UTF-8 text", "byte 33"),
]


@pytest.mark.parametrize("text, where, phrase", CASES, ids=[c[2][:40] for c in CASES])
def test_each_problem_has_one_message(tmp_path: Path, text: str | bytes, where: str,
                                      phrase: str) -> None:
    problem = one_problem(tmp_path, text)
    assert problem.startswith(where) and phrase in problem, problem


def where(d: dict[str, Any], field: str) -> str:
    """Where the problem of `field` in definition `d` is reported."""
    if field == "id":
        return "programs."  # (then the id, quoted when it must be)
    return f"programs.{d['id']}.{field}: "


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(programs.invalid_edits(NOT_BUILTIN))
def test_any_one_invalid_edit_in_a_file_gives_exactly_its_problem(
        tmp_path: Path, edit: tuple[dict[str, Any], str, str]) -> None:
    d, field, phrase = edit
    problem = one_problem(tmp_path, toml(d))
    assert problem.startswith(where(d, field)) and phrase in problem, problem


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(programs.invalid_edits(NOT_BUILTIN), min_size=1, max_size=30,
                unique_by=lambda e: e[0]["id"]))
def test_every_problem_of_a_file_is_listed_in_one_error(
        tmp_path: Path, edits: list[tuple[dict[str, Any], str, str]]) -> None:
    found = problems_of(tmp_path, toml(*(d for d, _, _ in edits)))
    assert len(found) == len(edits)
    for (d, field, phrase), problem in zip(edits, found):  # in the file's order
        assert problem.startswith(where(d, field)) and phrase in problem, problem
    message = str(SurveysError("X", found))
    if len(found) > 1:
        shown = min(len(found), SHOWN_PROBLEMS)
        assert message.startswith(f"X: {len(found)} problems: (1) {found[0]}; (2) ")
        assert f"; ({shown}) {found[shown - 1]}" in message
    if len(found) > SHOWN_PROBLEMS:
        assert message.endswith(f"; and {len(found) - SHOWN_PROBLEMS} more (fix these first)")


def test_a_missing_a_directory_or_a_huge_file_is_named(tmp_path: Path) -> None:
    for path, phrase in ((tmp_path / "nope.toml", "No such file"),
                         (tmp_path, "cannot read the registry file")):
        with pytest.raises(SurveysError, match=phrase) as exc:
            surveys.registry(str(path), 50)
        assert str(exc.value).startswith(f"CXSTREAM_SURVEYS={path}: ")
    big = tmp_path / "big.toml"
    big.write_bytes(b"# " + b"x" * MAX_FILE_BYTES + b"\n")
    with pytest.raises(SurveysError, match="far more than any registry"):
        load(big, 50)


def test_a_device_that_never_ends_is_refused_too() -> None:
    with pytest.raises(SurveysError, match="far more than any registry"):
        load(Path("/dev/zero"), 50)


def test_the_error_is_a_settings_error_the_command_line_prints_in_one_line(
        tmp_path: Path) -> None:
    path = tmp_path / "surveys.toml"
    path.write_text('[programs.a]\nmetric = "csat"\nscale = [10, 1]\ntarget = 200\n')

    @click.command()
    @friendly
    def start() -> None:
        surveys.registry(str(path), 50)

    result = CliRunner(mix_stderr=False).invoke(start)
    assert result.exit_code == 2 and issubclass(SurveysError, SettingsError)
    assert result.stderr.count("\n") == 1 and "programs.a.scale: [10, 1] is inverted" in \
        result.stderr and "2 problems" in result.stderr


# -- the settings --------------------------------------------------------------------------


def test_the_settings() -> None:
    s = Settings.from_env({"CXSTREAM_SURVEYS": str(EXAMPLE), "CXSTREAM_MAX_PROGRAMS": "9"})
    assert (s.surveys, s.max_programs) == (str(EXAMPLE), 9)
    assert len(surveys.registry(s.surveys, s.max_programs)) == 9
    assert Settings.from_env({}).max_programs == 50
    for bad in ("2", "0", "x"):
        with pytest.raises(SettingsError, match="CXSTREAM_MAX_PROGRAMS"):
            Settings.from_env({"CXSTREAM_MAX_PROGRAMS": bad})
    with pytest.raises(SurveysError, match="at least 3"):
        surveys.registry("", 2)


def test_the_keys_are_the_programs_fields() -> None:
    assert FIELDS == ("metric", "scale", "satisfied", "high_effort", "target", "turns")
