"""The pre-merge review of a multi-database project (``flask db init --multidb``): bind by bind.

Each bind has its own revisions' functions (``upgrade_<bind>()``), its own models (the models
whose ``__bind_key__`` names it) and its own ``alembic_version``. The review gives each bind a
scratch place of its own on the review's server (:func:`bind_sides`: a temporary SQLite file
per bind, or a database name per bind on the server, its scratch databases made beside it),
and runs each bind's checks on it: SQL, lint and lock time of every revision's
``upgrade_<bind>()``, the models against a scratch database at the branch's head, a round trip.
Each check's name and each finding's message say the bind (``sql (bind audit)``,
``bind audit: ...``); each revision shows the SQL of every bind, one ``-- bind`` block each.
Every bind is reviewed in the review server's dialect (a SQLite bind in production is
reviewed as the server's).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path

from softbee.runbook.premerge.checks import CheckResult, Finding
from softbee.runbook.premerge.revision_checks import ReviewedRevision
from softbee.runbook.project import Project
from softbee.urls import parse_url


def bind_sides(project: Project, url: str) -> list[Project]:
    """One project per bind, each on its own scratch place beside ``url``; ``[]`` for one database."""
    from softbee.runbook.project.binds import (
        bind_projects,
        bind_urls_of,
        is_multi_database,
    )
    from softbee.runbook.project.core import DEFAULT_BIND

    if not is_multi_database(bind_urls_of(project)):
        return []
    names = [name for name in bind_urls_of(project) if name != DEFAULT_BIND]
    return bind_projects(project, bind_urls={name: scratch_url(url, name) for name in names})


def scratch_url(url: str, bind: str) -> str:
    """``url`` for bind ``bind``: a sibling SQLite file, or a database name of its own on the server."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "review.sqlite3")
        return parsed.set(database=str(path.with_name(f"{path.stem}-{bind}{path.suffix}"))
                          ).render_as_string(hide_password=False)
    return parsed.set(database=f"{parsed.database or 'review'}_{bind}").render_as_string(
        hide_password=False)


def copies(revisions: Sequence[ReviewedRevision]) -> list[ReviewedRevision]:
    """The revisions afresh for one bind: what a bind's checks learn stays that bind's."""
    return [dataclasses.replace(r, sql=None, sql_source="", destructive=[], locks=None)
            for r in revisions]


def named(results: Iterable[CheckResult], bind: str) -> list[CheckResult]:
    """``results`` of one bind: each check named ``<check> (bind B)``, each message ``bind B: ...``."""
    out = []
    for result in results:
        result.name = f"{result.name} (bind {bind})"
        result.findings = [_said(f, bind) for f in result.findings]
        out.append(result)
    return out


def _said(finding: Finding, bind: str) -> Finding:
    if finding.message.startswith(f"bind {bind}: "):
        return finding
    return dataclasses.replace(finding, message=f"bind {bind}: {finding.message}")


def merge(revisions: Sequence[ReviewedRevision],
          per_bind: Sequence[tuple[str, Sequence[ReviewedRevision]]]) -> None:
    """Each revision shows every bind's SQL (a ``-- bind B`` block each), destructive statements, and its
    longest lock."""
    for index, rev in enumerate(revisions):
        mine = [(bind, revs[index]) for bind, revs in per_bind]
        rev.sql = "".join(f"-- bind {bind}\n{r.sql or ''}\n" for bind, r in mine
                          if r.sql is not None) or None
        rev.sql_source = "; ".join(f"bind {bind}: {r.sql_source or 'not rendered'}"
                                   for bind, r in mine)
        rev.destructive = [{**d, "bind": bind} for bind, r in mine for d in r.destructive]
        locks = [r.locks for _, r in mine if r.locks is not None]
        rev.locks = max(locks, key=lambda lock: lock.seconds) if locks else None
