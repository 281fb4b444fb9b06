"""A multi-database project (Flask-Migrate's ``--multidb`` template): one guarded project per bind.

Flask-Migrate's multi-database ``env.py`` keeps one ``alembic_version`` per bind and
migrates each bind on its own connection. When every bind is the default database, the
runbooks route them all onto their one connection, as for any project. When a bind is
really another database, :func:`bind_projects` gives one :class:`~softbee.runbook.project.Project`
per bind, in a fixed order (``"default"`` first, then ``SQLALCHEMY_BINDS`` in its order):
each opens sessions on that bind's own database, and its ``env.py`` block routes only that
bind's ``configure`` (``routing.BindRoute``), so every runbook step (state, counts, lock,
timeouts, the data-loss guard, history) runs per bind exactly as for one database.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from softbee.runbook.errors import ConfigError, RunbookError
from softbee.runbook.project.core import DEFAULT_BIND, Project
from softbee.runbook.project.engines import make_engine
from softbee.runbook.project.routing import database_identity
from softbee.runbook.util.compat import bind_engine_url, sqlite_relative_folder
from softbee.runbook.util.secrets import reveal
from softbee.urls import BadDatabaseURL, parse_url

BINDS_PARAMETER = "binds"
BIND_URLS_PARAMETER = "bind_urls"


def bind_names(project: Project) -> list[str]:
    """The app's ``SQLALCHEMY_BINDS`` keys, in their order (empty for a one-database app)."""
    configured = project.app.config.get("SQLALCHEMY_BINDS") or {}
    return [str(name) for name in configured]


def bind_urls_of(project: Project, bind_urls: Mapping[str, str] | None = None) -> dict[str, URL]:
    """Every bind's URL, the default first: ``bind_urls`` where given, else the app's engine's."""
    names = bind_names(project)
    if DEFAULT_BIND in names:
        raise ConfigError(
            f"SQLALCHEMY_BINDS has a bind named {DEFAULT_BIND!r}, the name the runbooks give the "
            "app's default database: rename that bind to migrate this project")
    given = dict(reveal(dict(bind_urls or {}), BIND_URLS_PARAMETER) or {})
    unknown = sorted(set(given) - set(names))
    if unknown:
        hint = ("the default database's URL is database_url" if DEFAULT_BIND in unknown else
                f"the app's binds are {names or 'none'}")
        raise ConfigError(f"bind_urls names {unknown}, not a bind of the app ({hint})")
    urls: dict[str, URL] = {DEFAULT_BIND: project.url}
    for name in names:
        if name in given:
            urls[name] = _parsed(project, name, str(given[name]))
            continue
        with project.app.app_context():
            urls[name] = bind_engine_url(project._extension.db, project.app, name)
    return urls


def is_multi_database(urls: Mapping[str, URL]) -> bool:
    """True when a bind is another database than the default one (compared by ``database_identity``)."""
    default = database_identity(urls[DEFAULT_BIND])
    return any(database_identity(url) != default for url in urls.values())


def bind_projects(
    project: Project,
    binds: Sequence[str] | None = None,
    bind_urls: Mapping[str, str] | None = None,
) -> list[Project]:
    """The projects to migrate, in order: ``[project]`` for one database, else one per chosen bind.

    ``binds`` chooses binds by name (``"default"`` for the app's default database; None: all);
    ``bind_urls`` gives a non-default bind's URL (None: the app's). The order is fixed:
    the default bind first, then ``SQLALCHEMY_BINDS`` in its order, whatever order ``binds`` has.
    """
    urls = bind_urls_of(project, bind_urls)
    if isinstance(binds, str):
        binds = [binds]
    unknown = sorted(set(binds or ()) - set(urls))
    if unknown:
        raise ConfigError(f"binds names {unknown}, not a bind of the app (its binds: {list(urls)})")
    if not is_multi_database(urls):
        if binds is not None and set(binds) != set(urls):
            raise ConfigError(
                f"binds={list(binds)}: every bind of this app is its one database, migrated as "
                "one in one transaction; leave binds as None")
        return [project]
    chosen = [name for name in urls if binds is None or name in binds]
    if not chosen:
        raise ConfigError("binds is empty: name at least one bind, or None for all")
    every = tuple(urls.items())
    return [for_bind(project, name, urls[name], every) for name in chosen]


def refuse_several_databases(project: Project, what: str) -> None:
    """Raise one line when ``project``'s binds are several databases and ``what`` cannot take them yet."""
    urls = bind_urls_of(project)
    if is_multi_database(urls):
        others = [name for name in urls if name != DEFAULT_BIND]
        raise ConfigError(
            f"{what} is not supported for multi-database projects yet (binds {others} are other "
            "databases than the default one): nothing was done; upgrade_downgrade, inspect_diff, "
            "recover_stamp and check_drift take each bind on its own (parameter binds)")


def for_bind(project: Project, name: str, url: URL, every: tuple[tuple[str, URL], ...]) -> Project:
    """``project`` as one bind: that bind's database, engine and ``env.py`` route."""
    engine = project.engine if url == project.url else make_engine(url)
    return dataclasses.replace(project, url=url, engine=engine, bind=name, binds=every,
                               _target_metadata=None)


def bind_label(project: Project) -> str:
    """``bind audit (postgresql://…/audit)`` for a bind; the redacted URL for one database."""
    if project.bind is None:
        return project.safe_url
    return f"bind {project.bind} ({project.safe_url})"


def bind_heading(project: Project) -> str:
    """A notebook section's Markdown heading for one bind (empty for a one-database project)."""
    if project.bind is None:
        return ""
    return f"### Bind `{project.bind}` ({project.dialect}, `{project.safe_url}`)"


@contextmanager
def naming_bind(project: Project) -> Iterator[None]:
    """A runbook error raised in the block names the bind first (``bind audit: ...``); nothing for one database."""
    try:
        yield
    except RunbookError as error:  # our own message, first in args (no driver's error here)
        message, *rest = error.args or ("",)
        if project.bind is not None and not str(message).startswith("bind "):
            error.args = (f"bind {project.bind}: {message}", *rest)
        raise


def bind_facts(projects: Sequence[Project], facts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-bind facts for the run record: ``{"binds": {name: facts}}`` (empty for one database)."""
    if len(projects) == 1 and projects[0].bind is None:
        return {}
    return {"binds": {p.bind: dict(f) for p, f in zip(projects, facts)}}


def _parsed(project: Project, name: str, raw: str) -> URL:
    try:
        url = parse_url(raw)
    except BadDatabaseURL as exc:
        raise ConfigError(f"bind_urls[{name!r}]: {exc}") from None
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and database and database != ":memory:" and not (
            database.startswith("file:") or Path(database).is_absolute()):
        folder = sqlite_relative_folder(project._extension.db, project.app)
        url = url.set(database=str(Path(folder) / database))
    return url
