"""papermill's banner goes for a one-line RunbookError and stays for anything else."""

from __future__ import annotations

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from softbee.runbook.run.banner import ERROR_MARKER_TAG, quiet_banner, runbook_error_names


def failed_notebook(ename: str, traceback: list[str]):
    """A notebook as papermill leaves a failed run: banner, anchor, the failing cell."""
    banner = new_markdown_cell("<span>An Exception was encountered at 'In [2]'.</span>")
    anchor = new_markdown_cell('<span id="papermill-error-cell">Execution using papermill '
                               "encountered an exception here and stopped:</span>")
    for cell in (banner, anchor):
        cell.metadata["tags"] = [ERROR_MARKER_TAG]
    failing = new_code_cell("go()", outputs=[
        new_output("error", ename=ename, evalue="what is wrong; how to fix it",
                   traceback=traceback)])
    return new_notebook(cells=[banner, new_markdown_cell("## Step 1"), anchor, failing])


def test_the_names_are_every_runbook_error_and_nothing_else():
    names = runbook_error_names()
    assert {"RunbookError", "ConfigError", "NotRoutable", "RevisionError"} <= names
    assert "ValueError" not in names


def test_a_one_line_runbook_error_keeps_only_an_invisible_anchor():
    nb = quiet_banner(failed_notebook("RevisionError", ["RevisionError: what is wrong"]),
                      "RevisionError")

    sources = [cell.source for cell in nb.cells]
    assert not any("An Exception was encountered" in source for source in sources)
    assert not any("encountered an exception here" in source for source in sources)
    assert '<span id="papermill-error-cell"></span>' in sources  # the link target stays
    assert sources[-1] == "go()"


@pytest.mark.parametrize(("ename", "traceback"), [
    ("ValueError", ["ValueError: x"]),  # not ours
    ("RevisionError", ["Traceback", "  File ...", "RevisionError: x"]),  # ours, not one line
])
def test_anything_else_keeps_papermills_banner(ename, traceback):
    nb = quiet_banner(failed_notebook(ename, traceback), ename)

    assert len(nb.cells) == 4
    assert "An Exception was encountered" in nb.cells[0].source
