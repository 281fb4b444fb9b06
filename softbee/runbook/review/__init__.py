"""Reading what is there and what will run, without changing anything.

Owns: the recorded revision and the scripts' graph (``state``), the plan of a run (``plan``),
row counts (``counts``), models against database and the live schema (``diff``), the SQL a
plan renders offline (``offline``), lint (``lint``, on ``lint_findings``, ``lint_statements``,
``lint_squawk`` and ``lint_diff``), the schema a revision produces (``expected``),
writing a new revision file (``revision``) and the verdict on what a database records
(``findings``, each a ``checks.Finding``; a check that fails degrades to one).
Imports: :mod:`~softbee.runbook.util`, :mod:`~softbee.runbook.project` and
:mod:`~softbee.runbook.online` (the phase markers and record); never ``engine``, ``run``,
``archive`` or ``fleet``.
"""

from __future__ import annotations

from typing import Any

_FINDINGS = ("Finding", "check_versions", "findings_frame", "findings_markdown",
             "blocks_migration", "review_plan")


def __getattr__(name: str) -> Any:
    """The names of :mod:`.findings`, where ``softbee.runbook.review`` (a module) kept them."""
    if name in _FINDINGS:
        from softbee.runbook.review import findings

        return getattr(findings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
