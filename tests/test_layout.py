"""The library's shape: packages by concern, imports one way, no circle, no old names.

docs/design.md ("The library's layers") draws the same table. The imports are read from
the source (every ``import`` and ``from ... import``, at any depth, type-only ones too),
so a lazy import inside a function counts like one at the top.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from softbee.runbook.moved import MOVED
from tests.helpers import REPO_ROOT

LIBRARY = REPO_ROOT / "softbee" / "runbook"
PREFIX = "softbee.runbook"

# What each package may import besides itself and the top-level modules (errors, deferred,
# moved). cli.py is the top: it may import anything.
ALLOWED = {
    "util": set(),
    "project": {"util"},
    "online": {"util"},
    "review": {"util", "project", "online"},
    "history": {"util", "project", "online", "archive"},
    "engine": {"util", "project", "online", "review", "history"},
    "premerge": {"util", "project", "online", "review", "engine"},
    "archive": {"util"},
    "run": {"util", "archive"},
    "fleet": {"util", "archive", "run"},
}
TOP_LEVEL = {"errors", "deferred", "moved", "__init__", "__main__", "cli"}
MAX_LINES = 400
# A longer module says why in its docstring, in a sentence of its own: "Long because ...".
LONG_BECAUSE = re.compile(r"(?:^|[.:;]\s+|\n\s*)Long because \S")



def module_name(path: Path) -> str:
    """softbee/runbook/engine/migrate.py -> softbee.runbook.engine.migrate."""
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def library_modules() -> dict[str, Path]:
    """Every module of the library by dotted name."""
    return {module_name(path): path for path in sorted(LIBRARY.rglob("*.py"))}


def imported(path: Path, modules: dict[str, Path]) -> set[str]:
    """The library modules ``path`` imports (a ``from pkg import sub`` names the submodule)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [n if n in modules else node.module for n in names]
        else:
            continue
        found.update(n for n in names if n.startswith(PREFIX + ".") or n == PREFIX)
    return found


def package_of(name: str) -> str:
    """softbee.runbook.engine.migrate -> engine; softbee.runbook.errors -> errors."""
    rest = name[len(PREFIX) + 1:] if name != PREFIX else "__init__"
    return rest.split(".")[0]


GRAPH = {name: imported(path, library_modules()) for name, path in library_modules().items()}


def test_every_module_belongs_to_a_known_package_or_the_top_level():
    unknown = {name for name in GRAPH if package_of(name) not in {*ALLOWED, *TOP_LEVEL}}
    assert unknown == set(), f"modules outside the layers of ALLOWED: {sorted(unknown)}"


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_layers_below_it(package):
    upward = sorted(
        f"{name} imports {target}"
        for name, targets in GRAPH.items() if package_of(name) == package
        for target in targets
        if package_of(target) not in {package, *ALLOWED[package], *(TOP_LEVEL - {"cli", "__main__"})}
    )
    assert upward == [], "\n".join(upward)


def test_the_library_imports_modules_by_their_new_names_only():
    old = sorted(f"{name} imports {target}" for name, targets in GRAPH.items()
                 for target in targets if target[len(PREFIX) + 1:] in MOVED)
    assert old == [], "\n".join(old)


def test_no_import_circle_inside_the_library():
    def cycle_from(start: str) -> list[str] | None:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in GRAPH.get(node, ()):
                if nxt == start:
                    return [*path, start]
                if nxt not in seen and nxt in GRAPH:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
        return None

    circles = {" -> ".join(c) for name in GRAPH if (c := cycle_from(name))}
    assert circles == set(), "\n".join(sorted(circles))


def test_a_module_over_400_lines_says_why_in_its_docstring():
    long = sorted(
        f"{name}: {n} lines" for name, path in library_modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
        and not LONG_BECAUSE.search(ast.get_docstring(ast.parse(path.read_text())) or "")
    )
    assert long == [], "\n".join(long) + '\nsplit it, or say why in its docstring: "Long because ..."'


@pytest.mark.parametrize("docstring, says_why", [
    ("Run a runbook.\n\nLong because its steps read as one sequence.", True),
    ("Run a runbook. Long because its steps read as one sequence.", True),
    ("Run a runbook, not long because of anything.", False),
    ("Run a runbook.", False),
])
def test_only_a_sentence_starting_long_because_counts_as_a_reason(docstring, says_why):
    assert bool(LONG_BECAUSE.search(docstring)) is says_why


def test_the_old_names_are_the_new_modules():
    import importlib

    for old, new in MOVED.items():
        assert importlib.import_module(f"{PREFIX}.{old}") is importlib.import_module(
            f"{PREFIX}.{new}"), old


def test_test_modules_find_the_repository_through_tests_helpers_not_their_own_folder():
    """Tests moved a folder down once and paths built from ``__file__`` broke: use REPO_ROOT/EXAMPLES."""
    own_paths = sorted(
        str(path.relative_to(REPO_ROOT)) for path in (REPO_ROOT / "tests").rglob("test_*.py")
        if "examples" not in path.parts and path.name != "test_layout.py"
        and "Path(__file__)" in path.read_text()
    )
    assert own_paths == []


def test_no_two_test_modules_share_a_name():
    """tests/ has no __init__.py: pytest cannot collect two test modules of one basename
    (``tests/util/test_table.py`` beside ``tests/history/test_table.py`` stopped make test)."""
    seen: dict[str, list[str]] = {}
    for path in sorted((REPO_ROOT / "tests").rglob("test_*.py")):
        if "examples" not in path.relative_to(REPO_ROOT / "tests").parts:
            seen.setdefault(path.name, []).append(str(path.relative_to(REPO_ROOT)))
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}
