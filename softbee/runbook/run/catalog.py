"""Which runbooks exist, what each is for, and which parameters it takes.

Everything is read from the notebooks themselves (the cell tagged ``parameters``,
parsed with :mod:`ast`), so the catalog never drifts from the files. The notebook
is read as plain JSON: ``list`` and the checks before a run import neither nbformat
nor papermill (seconds, with their dependencies). Papermill's own inspection is
asked only when the cell is not valid Python. The convention for that cell::

    message: str = None  # required: what the revision does
    target: str = "head"  # revision to migrate to

A parameter is *required* when its default is ``None`` and its help comment
starts with "required".
"""

from __future__ import annotations

import ast
import difflib
import io
import json
import os
import re
import site
import sys
import sysconfig
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from softbee.runbook.errors import CatalogError
from softbee.runbook.run.parameters import Parameter as Parameter  # values are checked there
from softbee.runbook.run.parameters import check_parameters as check_parameters
from softbee.runbook.run.parameters import check_value as check_value
from softbee.runbook.run.parameters import coerce_text as coerce_text
from softbee.runbook.run.parameters import load_parameter_file as load_parameter_file

RUNBOOKS_DIR_ENV = "SOFTBEE_RUNBOOKS_DIR"
_DATA_SUBDIR = Path("share", "softbee", "runbooks")

_BASE_TYPES = {"str", "int", "float", "bool", "list", "dict"}
_TYPE_ALIASES = {"List": "list", "Dict": "dict", "Sequence": "list", "Mapping": "dict"}


@dataclass(frozen=True)
class Runbook:
    """A runbook notebook: its name (file stem), purpose and parameters."""

    name: str
    path: Path
    purpose: str
    parameters: tuple[Parameter, ...] = ()
    problem: str | None = field(default=None, compare=False)  # why it could not be read

    def parameter(self, name: str) -> Parameter | None:
        """The parameter called ``name``, or None."""
        return next((p for p in self.parameters if p.name == name), None)


def runbooks_dir() -> Path:
    """$SOFTBEE_RUNBOOKS_DIR, else the source tree's runbooks/, else the installed data files."""
    configured = os.environ.get(RUNBOOKS_DIR_ENV)
    if configured:
        path = Path(configured).expanduser()
        if not path.is_dir():
            raise CatalogError(
                f"{RUNBOOKS_DIR_ENV}={configured!r} is not a directory: point it at a folder "
                "of runbook notebooks or unset it"
            )
        return path
    candidates = list(_install_candidates())
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise CatalogError(
        f"no runbooks folder found (looked in {looked}): "
        f"reinstall softbee or set {RUNBOOKS_DIR_ENV}"
    )


def _install_candidates() -> Iterator[Path]:
    import softbee

    root = Path(softbee.__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file():  # a source checkout or an editable install
        yield root / "runbooks"
    seen: set[Path] = set()
    for prefix in (sys.prefix, sysconfig.get_path("data"), site.USER_BASE):
        if prefix and Path(prefix) not in seen:
            seen.add(Path(prefix))
            yield Path(prefix) / _DATA_SUBDIR


def list_runbooks(directory: Path | None = None) -> list[Runbook]:
    """Every runbook in ``directory`` (default :func:`runbooks_dir`), sorted by name."""
    folder = directory if directory is not None else runbooks_dir()
    return [_load_or_flag(path) for path in _notebooks(folder)]


def _notebooks(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith((".", "_")))


def find_runbook(name: str, directory: Path | None = None) -> Runbook:
    """The runbook called ``name``; :class:`CatalogError` naming the ones that exist if none."""
    folder = directory if directory is not None else runbooks_dir()
    path = folder / f"{name}.ipynb"
    if "/" in name or "\\" in name or name.startswith(".") or not path.is_file():
        names = [p.stem for p in _notebooks(folder)]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f", did you mean {close[0]!r}?" if close else ""
        known = ", ".join(names) or "none"
        raise CatalogError(
            f"no runbook {name!r} in {folder}{hint} (runbooks: {known}; see softbee-runbook list)"
        )
    return load_runbook(path)


def load_runbook(path: Path) -> Runbook:
    """Read one runbook notebook: its purpose and its parameters."""
    try:
        cells = read_cells(path)
        parameters = _parameters(path, cells)
    except Exception as exc:  # noqa: BLE001 - a damaged file can fail in many ways
        raise CatalogError(
            f"runbook {path.stem!r} cannot be read ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}): fix or restore {path}"
        ) from None
    return Runbook(name=path.stem, path=path, purpose=_purpose(cells),
                   parameters=tuple(parameters))


def read_cells(path: Path) -> list[dict[str, Any]]:
    """The notebook's cells as plain dicts, each ``source`` one string (nbformat 4 JSON).

    An older notebook (nbformat 3, cells in worksheets) is upgraded by nbformat.
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("not a notebook: the file is JSON but not an object")
    if int(data.get("nbformat", 0)) < 4:
        import nbformat

        data = json.loads(nbformat.writes(nbformat.read(str(path), as_version=4)))
    cells = data.get("cells")
    if not isinstance(cells, list) or not all(isinstance(cell, dict) for cell in cells):
        raise ValueError("not a notebook: no list of cells")
    return [{**cell, "source": _text(cell.get("source", ""))} for cell in cells]


def _text(source: Any) -> str:
    return "".join(source) if isinstance(source, list) else str(source)


def _load_or_flag(path: Path) -> Runbook:
    try:
        return load_runbook(path)
    except CatalogError as exc:
        return Runbook(name=path.stem, path=path, purpose="", problem=str(exc))


def _purpose(cells: list[dict[str, Any]]) -> str:
    """The first line of the first markdown cell, without its leading '#'."""
    cell = next((c for c in cells if c.get("cell_type") == "markdown"), None)
    return first_line(cell["source"]) if cell is not None else ""


def first_line(markdown: str) -> str:
    """The first non-blank line of a markdown cell without its leading '#'s ("" if none).

    A runbook's purpose and the name of the step a failure happened in are both read this way.
    """
    for line in markdown.splitlines():
        if line.strip():
            return line.strip().lstrip("#").strip()
    return ""


def _parameters(path: Path, cells: list[dict[str, Any]]) -> list[Parameter]:
    """The assignments of the cell tagged ``parameters``, in order, read with :mod:`ast`.

    :mod:`ast` reads what papermill's pattern cannot (annotations such as ``str | None``)
    and gives the same name, annotation, default and help for the lines it can
    (``tests/run/test_catalog.py`` compares the two on every runbook). Only a cell that is
    not valid Python is left to papermill's line-by-line pattern, as before.
    """
    cell = next((c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])),
                None)
    if cell is None:
        return []
    try:
        found = _ast_parameters(cell["source"], strict=True)
    except SyntaxError:
        found = _papermill_parameters(path)
    return [_make_parameter(name, *spec) for name, spec in found.items()]


def _papermill_parameters(path: Path) -> dict[str, tuple[str, str, str]]:
    """Papermill's view of the parameters cell (its regular expression, line by line)."""
    from papermill import inspect_notebook

    return {name: (info["inferred_type_name"], info["default"], info["help"])
            for name, info in inspect_notebook(str(path)).items()}


def _ast_parameters(source: str, strict: bool = False) -> dict[str, tuple[str, str, str]]:
    """``name -> (annotation, default source, help)`` for each top-level assignment.

    A cell that is not valid Python gives no parameters, or raises with ``strict``.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        if strict:
            raise
        return {}
    comments = _comments_by_line(source)
    result: dict[str, tuple[str, str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            name, annotation, value = node.target.id, ast.unparse(node.annotation), node.value
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            name, annotation, value = node.targets[0].id, "None", node.value
        else:
            continue
        default = ast.get_source_segment(source, value) or ast.unparse(value)
        result[name] = (annotation, default, comments.get(node.end_lineno or node.lineno, ""))
    return result


def _comments_by_line(source: str) -> dict[int, str]:
    comments: dict[int, str] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = token.string.lstrip("#").strip()
    except (tokenize.TokenError, SyntaxError):
        pass
    return comments


def _make_parameter(name: str, type_name: str, default: str, help_text: str) -> Parameter:
    annotation = "" if type_name in ("None", "") else type_name.strip().strip("'\"")
    if annotation:
        kind, nullable = _kind_of_annotation(annotation)
    else:
        kind, nullable = _kind_of_default(default)
    return Parameter(
        name=name,
        type_name=annotation,
        default=default,
        help=help_text,
        kind=kind,
        nullable=nullable,
    )


def _kind_of_annotation(annotation: str) -> tuple[str, bool]:
    """``"Optional[int]"`` -> ``("int", True)``; unknown annotations are ``any``."""
    text = re.sub(r"\s+", "", annotation).removeprefix("typing.")
    nullable = False
    match = re.fullmatch(r"Optional\[(.+)\]", text)
    if match:
        text, nullable = match.group(1), True
    parts = [p for p in re.split(r"\|", text) if p]
    if len(parts) > 1 and "None" in parts:
        parts = [p for p in parts if p != "None"]
        nullable = True
    match = re.fullmatch(r"Union\[(.+)\]", text)
    if match:
        members = match.group(1).split(",")
        nullable = nullable or "None" in members
        parts = [m for m in members if m != "None"]
    if len(parts) != 1:
        return "any", nullable
    base = re.sub(r"\[.*\]$", "", parts[0].removeprefix("typing."))
    base = _TYPE_ALIASES.get(base, base)
    return (base if base in _BASE_TYPES else "any"), nullable


def _kind_of_default(default: str) -> tuple[str, bool]:
    """The kind of an unannotated parameter, from its literal default."""
    try:
        value = ast.literal_eval(default)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return "any", False
    if value is None:
        return "any", True
    for kind in ("bool", "int", "float", "str", "list", "dict"):
        if type(value).__name__ == kind:
            return kind, False
    return "any", False
