"""Migrating a multi-database project: one bind after the other, each behind its own guards.

Two databases cannot commit together. So the binds run one at a time, in the fixed order
:func:`~softbee.runbook.project.binds.bind_projects` gives (the default bind first, then
``SQLALCHEMY_BINDS`` in its order), each through :func:`~softbee.runbook.engine.migrate.run_migration`
on its own database: its own lock, timeouts, counts, data-loss guard, round trip and history,
committed (or, for a rehearsal, rolled back) before the next bind starts. Downgrades run
in the same order: the binds' revisions are independent, none waits for another's.
Production's confirmation and each bind's ``env.py`` routing are checked for every bind
before the first one runs (``preflight``, ``run_binds``). When a bind fails
after an earlier one committed, :class:`~softbee.runbook.errors.BindsPartlyMigrated` says in
one line which bind committed at which revision and which one did not, and how to finish.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from softbee.runbook.engine.guards import require_confirmation
from softbee.runbook.engine.migrate import run_migration
from softbee.runbook.engine.result import MigrationResult, Progress
from softbee.runbook.errors import BindsPartlyMigrated, RunbookError, first_line
from softbee.runbook.project import Project
from softbee.runbook.project.binds import bind_heading, bind_label, naming_bind
from softbee.runbook.project.dialects import dialect_named
from softbee.runbook.review.drift import Drift, check_drift, drift_note, refuse_drift
from softbee.runbook.review.plan import Plan, plan_migration
from softbee.runbook.review.state import State, get_state, state_table


@dataclass
class BindResult:
    """One bind's run: its name (``"default"`` for a one-database project) and its result."""

    bind: str
    project: Project
    result: MigrationResult

    @property
    def heading(self) -> str:
        """The notebook's heading for this bind (empty for a one-database project)."""
        return bind_heading(self.project)


@dataclass
class BindPreflight:
    """One bind's preflight: where it is, what would run, and whether its schema drifted."""

    project: Project
    state: State
    plan: Plan
    drift: Drift

    def facts(self) -> dict[str, Any]:
        """What the run record keeps of it."""
        return {"revision_before": self.plan.start or "base",
                "in_progress": list(self.state.in_progress), "drift": self.drift.to_json()}

    def shown(self, rehearse: bool = False) -> list[Any]:
        """What the notebook displays: the bind's heading, its state, the plan's headline and steps."""
        from IPython.display import Markdown

        heading = [Markdown(bind_heading(self.project))] if self.project.bind else []
        return [*heading, state_table(self.state),
                Markdown(self.plan.headline(rehearse) + drift_note(self.drift)), self.plan.table()]


    def refuse_drift(self, allow_drift: bool = False) -> None:
        """:func:`~softbee.runbook.review.drift.refuse_drift`, its line naming the bind."""
        with naming_bind(self.project):
            refuse_drift(self.drift, allow_drift)


def preflight(projects: Sequence[Project], direction: str, target: str | None) -> list[BindPreflight]:
    """Each bind's state, plan and drift, read before anything runs (nothing is written).

    With several binds each one's ``env.py`` routing is probed too, so a bind that cannot be
    routed is refused before the first bind commits, not after.
    """
    found = []
    for project in projects:
        if project.bind is not None:
            with naming_bind(project), project.connect() as connection, project.bound(connection):
                pass  # routing.onto probes env.py for this bind (nothing is run)
        state = get_state(project)
        found.append(BindPreflight(project, state, plan_migration(project, direction, target),
                                   check_drift(project)))
    return found


def run_binds(
    projects: Sequence[Project],
    direction: str = "upgrade",
    target: str | None = None,
    *,
    progress: Progress | None = None,
    **options: Any,
) -> list[BindResult]:
    """Run :func:`run_migration` on each bind in order; the keyword arguments are its own.

    A one-database project (``[project]``) runs exactly as :func:`run_migration` does. With
    several binds, a failure before any bind committed is the failing bind's own error
    (its message names the bind); a failure after one committed is
    :class:`BindsPartlyMigrated`, one line saying what each bind is left at.
    """
    say = progress or (lambda _message: None)
    confirms = _confirm_every_bind(projects, options.get("confirm"), options.get("production"))
    done: list[BindResult] = []
    for project in projects:
        name = project.bind or "default"
        if project.bind is not None:
            say(f"{bind_label(project)}:")
        before = _where(project)[0] if project.bind is not None else None
        try:
            result = run_migration(project, direction, target, progress=progress,
                                   **{**options, **confirms.get(name, {})})
        except RunbookError as exc:
            if project.bind is None:
                raise
            committed = [d for d in done if d.result.committed]
            after, phases = _where(project)
            transactional = dialect_named(project.dialect).transactional_ddl
            left = left_at(before, after, transactional, phases)
            facts = _partly_facts(done, name, before, after, left,
                                  [p.bind or "default" for p in projects[len(done) + 1:]])
            if not committed:
                exc.facts = facts  # type: ignore[attr-defined]  # the cell records them
                with naming_bind(project):
                    raise
            raise BindsPartlyMigrated(
                partly_migrated_line(committed, name, before, after, exc, transactional, phases),
                [d.bind for d in committed], name, facts=facts,
            ) from exc
        done.append(BindResult(name, project, result))
    return done


def partly_migrated_line(
    committed: Sequence[BindResult], failed: str, before: str | None, after: str | None,
    cause: BaseException, transactional_ddl: bool = True, in_progress: Sequence[str] = (),
) -> str:
    """``bind default committed at X; bind audit rolled back at Y: what to do (cause)``.

    "Rolled back" only when it is true: the failed bind is where it started, on a database
    whose DDL is transactional, and no online phase of it committed (``in_progress``, the
    bind's phase record read after the failure, names any phase that did).
    """
    done = "; ".join(f"bind {d.bind} committed at {d.result.end or 'base'}" for d in committed)
    left = f"bind {failed} {left_at(before, after, transactional_ddl, in_progress)}"
    return (f"{done}; {left}: rerun upgrade_downgrade to finish, or fix by hand and run "
            f"recover_stamp with binds=[{failed!r}] (the two databases cannot commit together; "
            f"bind {failed} failed: {first_line(cause)})")


def left_at(before: str | None, after: str | None, transactional_ddl: bool = True,
            in_progress: Sequence[str] = ()) -> str:
    """Where a failed bind is left: ``rolled back at X`` only when that is true, else ``stopped at ...``."""
    if in_progress:
        return f"stopped at {after or 'an unknown revision'} with {'; '.join(in_progress)}"
    if after is not None and after == before and transactional_ddl:
        return f"rolled back at {after}"
    why = ("its DDL commits as it runs" if not transactional_ddl  # MySQL/MariaDB: what ran stays
           else "the revisions before the failing one committed")
    return (f"stopped at {after or 'an unknown revision'} (it was at "
            f"{before or 'an unknown revision'}; {why})")


def _confirm_every_bind(projects: Sequence[Project], confirm: str | None,
                        production: bool | None) -> dict[str, dict[str, str]]:
    """Production's confirmation for every bind, checked before the first one runs.

    With several binds ``confirm`` names each production database, separated by commas
    (``"softbee,softbee_audit"``); returns the ``confirm`` each bind's run is given. A bind
    it does not name is refused here, before anything commits, not after the first bind did.
    """
    if len(projects) < 2:
        return {}
    named = {part.strip() for part in (confirm or "").split(",") if part.strip()}
    given: dict[str, dict[str, str]] = {}
    for project in projects:
        own = project.database_name if project.database_name in named else confirm
        with naming_bind(project):
            require_confirmation(project, own, production)
        given[project.bind or "default"] = {"confirm": own} if own is not None else {}
    return given


def _partly_facts(done: Sequence[BindResult], failed: str, before: str | None,
                  after: str | None, left: str, not_run: Sequence[str]) -> dict[str, Any]:
    """The run record's ``binds`` after a partial run: what each bind is really at."""
    binds: dict[str, Any] = {d.bind: d.result.summary() for d in done}
    binds[failed] = {"revision_before": before, "revision_after": after, "outcome": left}
    for name in not_run:
        binds[name] = {"outcome": "not run: an earlier bind failed"}
    return {"binds": binds}


def _where(project: Project) -> tuple[str | None, tuple[str, ...]]:
    """The bind's recorded revision(s) (``base`` when none) and its phases in progress.

    ``(None, ())`` when they cannot be read: the line then says the revision is unknown.
    """
    try:
        state = get_state(project)
    except Exception:  # noqa: BLE001 - the line then says the revision is unknown
        return None, ()
    return ",".join(state.current) or "base", tuple(state.in_progress)
