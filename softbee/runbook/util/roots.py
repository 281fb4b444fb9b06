"""Where a project's relative paths start: its root, found as git finds ``.git``.

Kept apart from :mod:`softbee.runbook.project` (which imports Flask, Alembic and
SQLAlchemy) so that finding the default archive folder costs nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["candidate_roots", "find_project_root", "project_root"]


def candidate_roots(start: Path | None = None) -> list[Path]:
    """Where a project root may be.

    ``SOFTBEE_PROJECT_ROOT`` alone when set, else the cwd and every folder above it.
    """
    override = os.environ.get("SOFTBEE_PROJECT_ROOT")
    if override:
        return [Path(override).resolve()]
    here = (start or Path.cwd()).resolve()
    return [here, *here.parents]


def find_project_root(migrations_dir: str | os.PathLike[str] = "migrations") -> Path | None:
    """The nearest folder at or above the cwd holding ``<migrations_dir>/env.py``.

    As git finds ``.git``.
    """
    for folder in candidate_roots():
        if (folder / migrations_dir / "env.py").is_file():
            return folder
    return None


def project_root(migrations_dir: str | os.PathLike[str] = "migrations") -> Path:
    """Where relative paths start: the project root found from the cwd, else the cwd itself.

    A notebook's kernel starts in the notebook's folder (``runbooks/``) when JupyterLab or
    an editor opens it, so the root is looked for upwards; ``SOFTBEE_PROJECT_ROOT`` overrides.
    """
    return find_project_root(migrations_dir) or candidate_roots()[0]
