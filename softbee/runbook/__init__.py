"""The typed library under the runbooks: each module is one step of a migration's life.

``project`` loads any Flask-Migrate app; ``state``, ``diff``, ``counts`` and ``offline``
read; ``migrate``, ``revision`` and ``recover`` write, behind ``guards``; ``lint``
reviews SQL; ``summary``, ``catalog``, ``execute``, ``secrets``, ``redact``, ``render``
and ``archive`` serve headless runs and their audit trail.

``Project`` and ``load_project`` are imported on first use: ``softbee-runbook archive``
commands never need Flask-Migrate and Alembic, which take a second to import. Importing
the package defers ``rfc3987_syntax`` (:mod:`softbee.runbook.deferred`), whose import
would otherwise cost a headless run over a second of CPU through nbformat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from softbee.runbook.deferred import defer_iri_grammars
from softbee.runbook.errors import RunbookError

if TYPE_CHECKING:
    from softbee.runbook.project import Project, load_project

__all__ = ["Project", "RunbookError", "load_project"]

defer_iri_grammars()


def __getattr__(name: str) -> Any:
    """``Project`` and ``load_project`` from :mod:`softbee.runbook.project`, imported lazily."""
    if name in ("Project", "load_project"):
        from softbee.runbook import project

        return getattr(project, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
