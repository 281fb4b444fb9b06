"""papermill's "An Exception was encountered" banner, left out when the error is one of ours.

papermill marks a failed notebook with two red cells: a banner at the top ("An Exception
was encountered at 'In [4]'") and an anchor just above the failing cell ("Execution using
papermill encountered an exception here and stopped:"). For a
:class:`~softbee.runbook.errors.RunbookError` the failing cell already shows the one line
that says what is wrong and how to fix it (:mod:`softbee.runbook.run.cells`), and the
archived page's first words name the step; the banner would be a second, louder box saying
less. So :func:`quiet_banner` drops the banner and empties the anchor (its link target
stays). An unexpected exception keeps both, with its traceback.
"""

from __future__ import annotations

from typing import Any

from softbee.runbook.errors import RunbookError

ERROR_MARKER_TAG = "papermill-error-cell-tag"
ANCHOR = '<span id="papermill-error-cell"></span>'


def runbook_error_names() -> frozenset[str]:
    """The class names of RunbookError and every subclass of it."""
    names, pending = set(), [RunbookError]
    while pending:
        cls = pending.pop()
        names.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    return frozenset(names)


def is_runbook_error(nb: Any, ename: str) -> bool:
    """True when ``nb`` stopped on a RunbookError shown as one line (our cells' handler)."""
    if ename not in runbook_error_names():
        return False
    errors = [output for cell in nb.cells for output in cell.get("outputs", [])
              if output.get("output_type") == "error" and output.get("ename") == ename]
    return bool(errors) and all(len(output.get("traceback", [])) <= 1 for output in errors)


def quiet_banner(nb: Any, ename: str) -> Any:
    """``nb`` without papermill's banner when it stopped on a one-line RunbookError."""
    if not is_runbook_error(nb, ename):
        return nb
    kept = []
    for cell in nb.cells:
        if ERROR_MARKER_TAG not in cell.get("metadata", {}).get("tags", []):
            kept.append(cell)
        elif 'id="papermill-error-cell"' in cell.source:
            cell.source = ANCHOR  # the anchor stays, invisible
            kept.append(cell)
    nb.cells = kept
    return nb
