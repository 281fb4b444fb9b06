"""Migrating a multi-database project: one bind after the other, each behind its own guards.

Two databases cannot commit together. So the binds run one at a time, in the fixed order
:func:`~softbee.runbook.project.binds.bind_projects` gives (the default bind first, then
``SQLALCHEMY_BINDS`` in its order), each through :func:`~softbee.runbook.engine.migrate.run_migration`
on its own database: its own lock, timeouts, counts, data-loss guard, round trip and history,
committed (or, for a rehearsal, rolled back) before the next bind starts. When a bind fails
after an earlier one committed, :class:`~softbee.runbook.errors.BindsPartlyMigrated` says in
one line which bind committed at which revision and which one did not, and how to finish.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
    """Each bind's state, plan and drift, read before anything runs (nothing is written)."""
    found = []
    for project in projects:
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
    done: list[BindResult] = []
    for project in projects:
        name = project.bind or "default"
        if project.bind is not None:
            say(f"{bind_label(project)}:")
        before = _where(project)[0] if project.bind is not None else None
        try:
            result = run_migration(project, direction, target, progress=progress, **options)
        except RunbookError as exc:
            if project.bind is None:
                raise
            committed = [d for d in done if d.result.committed]
            if not committed:
                with naming_bind(project):
                    raise
            after, phases = _where(project)
            raise BindsPartlyMigrated(
                partly_migrated_line(committed, name, before, after, exc,
                                     dialect_named(project.dialect).transactional_ddl, phases),
                [d.bind for d in committed], name,
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
    if in_progress:
        left = f"bind {failed} stopped at {after or 'an unknown revision'} with {'; '.join(in_progress)}"
    elif after is not None and after == before and transactional_ddl:
        left = f"bind {failed} rolled back at {after}"
    else:  # MySQL/MariaDB commit DDL as it runs: the bind keeps what it did (its cause says what)
        left = (f"bind {failed} stopped at {after or 'an unknown revision'} (it was at {before}; "
                "its DDL commits as it runs)")
    return (f"{done}; {left}: rerun upgrade_downgrade to finish, or fix by hand and run "
            f"recover_stamp with binds=[{failed!r}] (the two databases cannot commit together; "
            f"bind {failed} failed: {first_line(cause)})")


def _where(project: Project) -> tuple[str | None, tuple[str, ...]]:
    """The bind's recorded revision(s) (``base`` when none) and its phases in progress.

    ``(None, ())`` when they cannot be read: the line then says the revision is unknown.
    """
    try:
        state = get_state(project)
    except Exception:  # noqa: BLE001 - the line then says the revision is unknown
        return None, ()
    return ",".join(state.current) or "base", tuple(state.in_progress)
