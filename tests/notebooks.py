"""Running a runbook headless in tests, and reading what the executed notebook showed.

Kept apart from ``tests/helpers.py``'s Soft-Bee helpers so the tests of other example
projects (``make test-oldest``, on a stack the Soft-Bee app does not run on) can use it.
"""

from __future__ import annotations

import html
import itertools
import re
from pathlib import Path
from typing import Any

import nbformat
import papermill as pm
import pytest
from nbformat import NotebookNode
from papermill.exceptions import PapermillExecutionError

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNBOOKS = REPO_ROOT / "runbooks"

_run_numbers = itertools.count(1)


def run_runbook(
    name: str, tmp_path: Path, cwd: Path = REPO_ROOT, **parameters: Any
) -> NotebookNode:
    """Execute ``runbooks/<name>.ipynb`` headless and return the executed notebook."""
    output = tmp_path / f"{next(_run_numbers):02d}-{name}.ipynb"
    pm.execute_notebook(
        str(RUNBOOKS / f"{name}.ipynb"),
        str(output),
        parameters=parameters,
        kernel_name="python3",
        cwd=str(cwd),
        progress_bar=False,
    )
    return nbformat.read(output, as_version=4)


def run_failing_runbook(
    name: str, tmp_path: Path, cwd: Path = REPO_ROOT, **parameters: Any
) -> tuple[PapermillExecutionError, NotebookNode]:
    """Execute a runbook that must stop on an error; return the error and the notebook it left."""
    output = tmp_path / f"{next(_run_numbers):02d}-{name}-failed.ipynb"
    with pytest.raises(PapermillExecutionError) as failure:
        pm.execute_notebook(
            str(RUNBOOKS / f"{name}.ipynb"),
            str(output),
            parameters=parameters,
            kernel_name="python3",
            cwd=str(cwd),
            progress_bar=False,
        )
    return failure.value, nbformat.read(output, as_version=4)


def step_outputs(nb: NotebookNode, heading: str) -> list[NotebookNode]:
    """Outputs of the code cells under the markdown step whose text starts with ``heading``."""
    outputs: list[NotebookNode] = []
    inside = False
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            if cell.source.lstrip().startswith(heading):
                inside = True
            elif inside and cell.source.lstrip().startswith("#"):
                break
            continue
        if inside and cell.cell_type == "code":
            outputs.extend(cell.outputs)
    assert inside, f"no step {heading!r} in the notebook"
    return outputs


def shown(outputs: list[NotebookNode], mime: str) -> list[str]:
    """The ``mime`` payloads among ``outputs`` (e.g. every ``text/html`` table shown)."""
    return [o.data[mime] for o in outputs if mime in o.get("data", {})]


def table_rows(table_html: str) -> list[dict[str, str]]:
    """The rows of a DataFrame shown as HTML, as dicts keyed by column name."""
    rows = [
        [html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
         for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.DOTALL)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table_html, re.DOTALL)
    ]
    header, body = rows[0], rows[1:]
    return [dict(zip(header[1:], row[1:], strict=True)) for row in body]
