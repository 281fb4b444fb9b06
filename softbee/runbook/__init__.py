"""The typed library under the runbooks, one package per concern; imports run one way.

``util`` (text, secrets, paths) <- ``project`` (load an app, route its ``env.py``,
dialects) <- ``online`` (phases revisions import) <- ``review`` (read what is there and
what will run) <- ``engine`` (migrate behind the guards); ``archive`` (the audit trail)
<- ``run`` (execute a notebook) <- ``fleet`` (many databases); ``cli`` on top.
docs/design.md draws the layers; ``tests/test_layout.py`` holds the library to them.
Modules' names from before the split still import (:mod:`softbee.runbook.moved`).

``Project`` and ``load_project`` are imported on first use: ``softbee-runbook archive``
commands never need Flask-Migrate and Alembic, which take a second to import. Importing
the package defers ``rfc3987_syntax`` (:mod:`softbee.runbook.deferred`), whose import
would otherwise cost a headless run over a second of CPU through nbformat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from softbee.runbook import moved
from softbee.runbook.deferred import defer_iri_grammars
from softbee.runbook.errors import RunbookError
from softbee.runbook.run import cells as _cells

if TYPE_CHECKING:
    from softbee.runbook.project import Project, load_project

__all__ = ["Project", "RunbookError", "load_project"]

defer_iri_grammars()
moved.install()
_shown_plainly = _cells.install()  # in a kernel: one-line errors, tables with "—" and "yes"


def __getattr__(name: str) -> Any:
    """``Project`` and ``load_project`` from :mod:`softbee.runbook.project`, imported lazily."""
    if name in ("Project", "load_project"):
        from softbee.runbook import project

        return getattr(project, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
