"""Before a merge: the migrations a branch adds, reviewed as a pull request needs them.

Owns: what the branch changes in git (``branch``), the history checks read from the files
(``history``), production's sizes (``stats``) and the lock time estimated from them
(``locktime``), inline ignores (``ignores``), the checks that need the project and a
scratch database (``revision_checks``), the review itself (``branch_review``), its reports
(``report``) and its CLI (``review_cli``).
Imports: :mod:`~softbee.runbook.util`, :mod:`~softbee.runbook.project`,
:mod:`~softbee.runbook.online`, :mod:`~softbee.runbook.review` and
:mod:`~softbee.runbook.engine` (a round trip and a capture run on scratch databases); never
``run``, ``archive`` or ``fleet``. It is a layer of its own because it composes the review
(reading) with the engine (running on scratch), which ``review`` may not import.
"""

from __future__ import annotations

from typing import Any

_PUBLIC = {"BranchReviewer": "branch_review", "BranchReview": "branch_review",
           "review_branch": "branch_review", "load_stats": "stats", "export_stats": "stats",
           "LockModel": "locktime"}


def __getattr__(name: str) -> Any:
    """The public names, imported when first asked for (``--help`` stays light)."""
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
