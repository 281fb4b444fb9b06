"""The SQL a migration would run, rendered by Alembic's offline mode without touching the database.

A revision that needs a live connection (it reads ``bind.engine.url``, reads rows with
``bind.execute(...)``, reflects) cannot be rendered offline: :func:`render_plan` renders
revision by revision and lists those with the reason, so the others are still shown.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import pandas as pd
from alembic import command
from sqlalchemy.engine import URL, make_url

from softbee.runbook.errors import RevisionError, first_line
from softbee.runbook.online.phases import phases_in_sql
from softbee.runbook.project import Project, routing
from softbee.runbook.project.dialects import dialect_named
from softbee.runbook.review.state import down_revisions
from softbee.urls import redact_text

# Offline mode never connects; this URL only picks the dialect that renders the SQL.
POSTGRESQL_RENDER_URL = "postgresql+psycopg2://offline@127.0.0.1:1/offline"  # refused at once if used


def render_url(project: Project, dialect: str | None) -> URL:
    """The URL offline SQL is rendered for: the project's own, or PostgreSQL's for ``dialect``.

    For PostgreSQL it names a driver that is installed (the project's own when it is on
    PostgreSQL): an ``env.py`` with no offline branch builds an engine from it, and a
    psycopg 3 project may have no psycopg2 to import.
    """
    if dialect != "postgresql":
        return project.url
    if project.dialect == "postgresql":
        return make_url(POSTGRESQL_RENDER_URL).set(drivername=project.url.drivername)
    import importlib.util

    if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg"):
        return make_url(POSTGRESQL_RENDER_URL).set(drivername="postgresql+psycopg")
    return make_url(POSTGRESQL_RENDER_URL)


class _UrlOnlyEngine:
    """What env.py's offline branch needs from an engine: its URL."""

    def __init__(self, url: URL) -> None:
        self.url = url

    def connect(self) -> Any:
        raise RevisionError("offline rendering tried to connect: the project's env.py is not offline-safe")


def review_dialect(project: Project) -> str:
    """The dialect a review shows and lints the pending SQL in (``dialects.Dialect.review_sql``).

    The database's own where lint reads it (PostgreSQL; MySQL and MariaDB, whose ``MODIFY``,
    ``CHANGE`` and ``concat()`` are what will run), else PostgreSQL's (SQLite's batch
    revisions cannot be rendered offline).
    """
    return dialect_named(project.dialect).review_sql


def upgrade_sql(
    project: Project, start: str | None, target: str | None, dialect: str | None = None
) -> str:
    """The SQL of upgrading ``start`` to ``target``, rendered for the project's own database.

    ``dialect='postgresql'`` renders it for PostgreSQL instead (any other value: the project's).
    """
    if target is None or start == target:
        return ""
    return _render(project, "upgrade", f"{start}:{target}" if start else target, dialect)


def downgrade_sql(project: Project, start: str, target: str | None, dialect: str | None = None) -> str:
    """The SQL of downgrading ``start`` to ``target`` (None for base)."""
    return _render(project, "downgrade", f"{start}:{target or 'base'}", dialect)


def plan_sql(project: Project, plan: Any, dialect: str | None = None) -> str:
    """The SQL of a :class:`~softbee.runbook.engine.migrate.Plan`, in its direction."""
    if not plan.scripts:
        return ""
    if plan.direction == "upgrade":
        return upgrade_sql(project, plan.start, plan.target, dialect)
    return downgrade_sql(project, plan.start, plan.target, dialect)


def _render(project: Project, direction: str, revision_range: str, dialect: str | None) -> str:
    """Run Alembic's ``upgrade``/``downgrade`` with ``sql=True`` and return what it printed."""
    url = render_url(project, dialect)
    buffer = io.StringIO()
    with project.stand_in_engine(_UrlOnlyEngine(url)):
        config = project.config(url)
        config.output_buffer = buffer
        with routing.rendering(url, config, project.bind_route()):
            getattr(command, direction)(config, revision_range, sql=True)
    return buffer.getvalue()


NEEDS_LIVE = "needs a live connection"


@dataclass
class RenderedRevision:
    """One revision's offline SQL, or why it cannot be rendered offline."""

    revision: str
    message: str
    sql: str | None  # None: the revision needs a live connection
    reason: str = ""


@dataclass
class RenderedPlan:
    """A plan's SQL revision by revision, in the order the revisions run."""

    revisions: list[RenderedRevision]

    @property
    def sql(self) -> str:
        """The SQL of every revision that rendered, in order."""
        return "".join(r.sql for r in self.revisions if r.sql)

    @property
    def needs_live(self) -> list[str]:
        """Revisions that could not be rendered offline."""
        return [r.revision for r in self.revisions if r.sql is None]

    def phases_frame(self) -> pd.DataFrame:
        """The phases of the online revisions (``online.run_phases``), before anything runs."""
        return pd.DataFrame(
            [{"revision": r.revision, **phase} for r in self.revisions if r.sql
             for phase in phases_in_sql(r.sql)],
            columns=["revision", "phase", "of", "runs", "name"],
        )

    def phases_shown(self) -> list[Any]:
        """A title and :meth:`phases_frame` to display, or nothing when no revision is online."""
        phases = self.phases_frame()
        if phases.empty:
            return []
        from IPython.display import Markdown

        return [Markdown("**Phases of the online revisions** (docs/online.md):"), phases]

    def frame(self) -> pd.DataFrame:
        """Each revision: rendered offline, or needs a live connection and why."""
        return pd.DataFrame(
            [{"revision": r.revision, "message": r.message,
              "offline": "rendered" if r.sql is not None else NEEDS_LIVE, "reason": r.reason}
             for r in self.revisions],
            columns=["revision", "message", "offline", "reason"],
        )


def render_plan(project: Project, plan: Any, dialect: str | None = None) -> RenderedPlan:
    """Render a :class:`~softbee.runbook.engine.migrate.Plan` one revision at a time; failures become "needs a live connection"."""
    rendered: list[RenderedRevision] = []
    previous = plan.start
    for script in plan.scripts:
        message = (script.doc or "").strip()
        if plan.direction == "upgrade":
            revision_range = f"{previous}:{script.revision}" if previous else script.revision
            previous = script.revision
        else:
            parents = down_revisions(script)
            below = (plan.target or "base") if len(parents) > 1 else (parents[0] if parents else "base")
            revision_range = f"{script.revision}:{below}"
        try:
            sql = _render(project, plan.direction, revision_range, dialect)
        except Exception as exc:  # noqa: BLE001 - whatever the revision raised offline is the reason
            reason = redact_text(f"{type(exc).__name__}: {first_line(exc)}")
            rendered.append(RenderedRevision(script.revision, message, None, reason))
            continue
        rendered.append(RenderedRevision(script.revision, message, sql))
    return RenderedPlan(rendered)
