"""The package's import rules (docs/development/architecture.md), read from the source.

Every ``import`` counts, also those inside functions and under ``TYPE_CHECKING``: a lazy
import is still a dependency, and a cycle hidden in a function body is still a cycle.

- ``core`` imports nothing outside itself; ``config`` only ``core``;
- each folder imports only from the floors below it (``FLOORS``), so nothing in ``worker``,
  ``api`` or ``notify`` imports ``tools``;
- no import cycle anywhere in the package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

import cxstream

PACKAGE = Path(cxstream.__file__).resolve().parent

#: What each part of the package may import, besides itself and the package root (which holds
#: only ``__version__``). A part is a folder (``worker``) or a top-level module (``app``).
FLOORS: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "config": frozenset({"core"}),
    "metrics": frozenset({"core"}),
    "kafka": frozenset({"core", "config", "metrics"}),
    "worker": frozenset({"core", "config", "metrics", "kafka"}),
    "notify": frozenset({"core", "config", "metrics", "kafka"}),
    "api": frozenset({"core", "config", "metrics", "kafka", "worker"}),
    "app": frozenset({"core", "config", "metrics", "kafka", "worker", "notify", "api"}),
    "tools": frozenset({"core", "config", "metrics", "kafka", "worker", "notify", "api", "app"}),
    "cli": frozenset({"core", "config", "metrics", "kafka", "worker", "notify", "api", "app",
                      "tools"}),
    "__main__": frozenset({"cli"}),
}


def modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the package under ``root``."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = (package, *path.relative_to(root).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (any import statement, at any depth)."""
    known = modules(root, package)
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                # `from a import b` imports the submodule a.b when there is one, else a itself
                targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in known
                           else source for alias in node.names]
            for target in targets:
                while target and target not in known:  # `import a.b.c` of a name inside c
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def part(module: str, package: str) -> str:
    """The floor a module stands on: its folder, or the top-level module's own name."""
    rest = module.removeprefix(package).lstrip(".")
    return rest.split(".", 1)[0] if rest else ""


def forbidden(graph: Mapping[str, Iterable[str]], package: str,
              floors: Mapping[str, frozenset[str]]) -> list[str]:
    """Every import that breaks the floors, as 'importer -> imported'."""
    broken = []
    for module, targets in sorted(graph.items()):
        mine = part(module, package)
        if not mine:
            continue  # the package root
        assert mine in floors, f"{module}: no floor for {mine!r}; add it to FLOORS"
        for target in sorted(targets):
            theirs = part(target, package)
            if theirs and theirs != mine and theirs not in floors[mine]:
                broken.append(f"{module} -> {target}")
    return broken


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


# -- the package ---------------------------------------------------------------------------


def test_every_folder_and_top_level_module_has_a_floor() -> None:
    parts = {part(m, "cxstream") for m in modules(PACKAGE, "cxstream")} - {""}
    assert parts == set(FLOORS), "a new folder needs its floor in FLOORS and in the docs"


def test_each_folder_imports_only_from_the_floors_below_it() -> None:
    assert forbidden(import_graph(PACKAGE, "cxstream"), "cxstream", FLOORS) == []


def test_the_package_has_no_import_cycle() -> None:
    assert cycles(import_graph(PACKAGE, "cxstream")) == []


def test_every_folder_says_what_it_is_for_and_what_it_may_import() -> None:
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "May import" in doc, f"{init.relative_to(PACKAGE.parent)}: say what it may import"


# -- the checks themselves, on a package made for them ---------------------------------------


def _package(root: Path, files: Mapping[str, str]) -> Path:
    for relative, text in files.items():
        path = root / "pkg" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


@pytest.mark.parametrize(("where", "line"), [
    ("worker/hot.py", "from pkg.tools import bench\n"),
    ("api/routes.py", "def f():\n    import pkg.tools.bench\n"),
    ("notify/send.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                       "    from pkg.tools.bench import x\n"),
    ("core/rule.py", "from pkg.config import settings\n"),
    ("config/settings.py", "from ..kafka import topics\n"),
])
def test_a_forbidden_import_is_found(tmp_path: Path, where: str, line: str) -> None:
    files = {f"{d}/__init__.py": "" for d in ("core", "config", "kafka", "worker", "api",
                                             "notify", "tools")}
    files |= {"__init__.py": "", "tools/bench.py": "x = 1\n", "config/settings.py": "",
              "kafka/topics.py": "", where: line}
    root = _package(tmp_path, files)
    broken = forbidden(import_graph(root, "pkg"), "pkg", FLOORS)
    assert len(broken) == 1 and broken[0].startswith("pkg." + where[:-3].replace("/", "."))


def test_a_cycle_is_found_also_through_a_lazy_import(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "__init__.py": "", "worker/__init__.py": "",
        "worker/a.py": "from pkg.worker import b\n",
        "worker/b.py": "def f():\n    from .c import g\n",
        "worker/c.py": "import pkg.worker.a\n",
        "worker/d.py": "from pkg.worker.a import x\n",  # into the cycle, not part of it
    })
    assert cycles(import_graph(root, "pkg")) == [["pkg.worker.a", "pkg.worker.b",
                                                   "pkg.worker.c"]]
