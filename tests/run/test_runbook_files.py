"""The committed runbooks: clean, thin, documented, and shaped the same way."""

from __future__ import annotations

import json
from pathlib import Path

import papermill
import pytest

from tests.helpers import REPO_ROOT

RUNBOOKS = sorted((REPO_ROOT / "runbooks").glob("*.ipynb"))
COMMON = {"app", "migrations_dir", "database_url"}
# The fleet runbook reads many databases, each from the targets file, never one database_url.
FLEET_COMMON = {"targets_file", "migrations_dir"}
MAX_CODE_LINES = 15  # a step is a few lines that call the library; logic lives in softbee/runbook


def test_the_seven_runbooks_are_committed() -> None:
    assert {p.stem for p in RUNBOOKS} == {
        "generate_revision", "inspect_diff", "upgrade_downgrade", "recover_stamp", "fleet", "review",
        "check_drift"}


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.stem)
def test_runbook_is_committed_without_outputs_or_execution_counts(path: Path) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert dirty == [], f"{path.name}: clear outputs of cells {dirty} before committing"
    assert "papermill" not in nb["metadata"], "an executed copy was committed"


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.stem)
def test_runbook_uses_the_python3_kernel(path: Path) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.stem)
def test_runbook_opens_with_its_purpose_then_one_parameters_cell(path: Path) -> None:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# ")
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert tagged == [1]


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.stem)
def test_every_parameter_has_help_and_is_documented_in_the_first_cell(path: Path) -> None:
    parameters = papermill.inspect_notebook(str(path))
    intro = "".join(json.loads(path.read_text(encoding="utf-8"))["cells"][0]["source"])
    assert (FLEET_COMMON if path.stem == "fleet" else COMMON) <= set(parameters)
    for name, spec in parameters.items():
        assert spec["help"], f"{name} has no trailing comment explaining it"
        assert f"`{name}`" in intro, f"{name} is not described in the first markdown cell"


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.stem)
def test_every_step_is_a_heading_and_a_few_lines_of_code(path: Path) -> None:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"][2:]
    for heading, code in zip(cells[::2], cells[1::2], strict=True):
        assert heading["cell_type"] == "markdown" and "".join(heading["source"]).startswith("## ")
        assert code["cell_type"] == "code"
        lines = [line for line in "".join(code["source"]).splitlines() if line.strip()]
        assert len(lines) <= MAX_CODE_LINES, f"{path.stem}: a step has {len(lines)} lines"


def test_the_python3_kernel_is_this_environments_python() -> None:
    """papermill and JupyterLab start "python3": it must be the project's venv, not the system's."""
    import os
    import sys

    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    executable = spec.argv[0]
    if executable in ("python", "python3", "{python}"):
        executable = sys.executable  # ipykernel's own spec: the launching interpreter
    # No realpath: a venv's python is a symlink to the base interpreter it was made from.
    assert os.path.abspath(executable).startswith(os.path.abspath(sys.prefix) + os.sep), (
        f"python3 kernel runs {spec.argv[0]}, not this environment's {sys.executable}"
    )
