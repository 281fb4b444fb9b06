"""The SQL a migration would run, rendered by Alembic's offline mode without touching the database."""

from __future__ import annotations

import io
from typing import Any

from alembic import command
from sqlalchemy.engine import URL, make_url

from softbee.runbook import routing
from softbee.runbook.errors import RevisionError
from softbee.runbook.project import Project

# Offline mode never connects; this URL only picks the dialect that renders the SQL.
POSTGRESQL_RENDER_URL = "postgresql+psycopg2://offline@localhost/offline"


class _UrlOnlyEngine:
    """What env.py's offline branch needs from an engine: its URL."""

    def __init__(self, url: URL) -> None:
        self.url = url

    def connect(self) -> Any:
        raise RevisionError("offline rendering tried to connect: the project's env.py is not offline-safe")


def upgrade_sql(
    project: Project, start: str | None, target: str | None, dialect: str | None = None
) -> str:
    """The SQL of upgrading ``start`` to ``target``; ``dialect='postgresql'`` renders for PostgreSQL."""
    if target is None or start == target:
        return ""
    return _render(project, "upgrade", f"{start}:{target}" if start else target, dialect)


def downgrade_sql(project: Project, start: str, target: str | None, dialect: str | None = None) -> str:
    """The SQL of downgrading ``start`` to ``target`` (None for base)."""
    return _render(project, "downgrade", f"{start}:{target or 'base'}", dialect)


def plan_sql(project: Project, plan: Any, dialect: str | None = None) -> str:
    """The SQL of a :class:`~softbee.runbook.migrate.Plan`, in its direction."""
    if not plan.scripts:
        return ""
    if plan.direction == "upgrade":
        return upgrade_sql(project, plan.start, plan.target, dialect)
    return downgrade_sql(project, plan.start, plan.target, dialect)


def _render(project: Project, direction: str, revision_range: str, dialect: str | None) -> str:
    """Run Alembic's ``upgrade``/``downgrade`` with ``sql=True`` and return what it printed."""
    url = make_url(POSTGRESQL_RENDER_URL) if dialect == "postgresql" else project.url
    buffer = io.StringIO()
    with project.stand_in_engine(_UrlOnlyEngine(url)):
        config = project.config(url)
        config.output_buffer = buffer
        with routing.rendering(url, config):
            getattr(command, direction)(config, revision_range, sql=True)
    return buffer.getvalue()
