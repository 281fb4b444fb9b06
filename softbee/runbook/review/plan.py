"""The plan of a run: from which revision, to which, through which scripts; nothing runs.

Reading what will run belongs with the review: ``inspect_diff`` plans without migrating,
and the engine (:mod:`softbee.runbook.engine.migrate`, which re-exports these names) runs
the plans made here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from alembic.script import Script
from sqlalchemy.engine import Connection

from softbee.runbook.errors import ParameterError, RevisionError
from softbee.runbook.project import Project
from softbee.runbook.project.advice import runbook_command
from softbee.runbook.project.dialects import dialect_named
from softbee.runbook.review.state import get_state, is_ancestor, path_between, resolve_target
from softbee.runbook.util.table import Table

if TYPE_CHECKING:  # pandas is imported where a DataFrame is made, when it is
    import pandas as pd

DIRECTIONS = ("upgrade", "downgrade")

@dataclass
class Plan:
    """What a run will do: from which revision, to which, through which scripts."""

    direction: str
    start: str | None
    target: str | None
    scripts: list[Script]
    # False where DDL commits as it runs (MySQL, MariaDB): a rehearsal runs on a scratch copy.
    transactional_ddl: bool = True

    def headline(self, rehearse: bool = False) -> str:
        """One Markdown line: direction, from, to, how many revisions, and whether it rehearses."""
        line = (f"**{self.direction}** from `{self.start or 'base'}` to `{self.target or 'base'}`: "
                f"{len(self.scripts)} revision(s)")
        if not rehearse:
            return line
        if self.transactional_ddl:
            return line + " — **rehearsal: everything will be rolled back**"
        return line + (" — **rehearsal on a scratch copy of the database** (dropped afterwards: "
                       "the database is not touched)")

    def frame(self) -> pd.DataFrame:
        """The scripts to run, in the order they run."""
        import pandas as pd

        return pd.DataFrame(self._rows(), columns=["step", "revision", "message"])

    def table(self) -> Table:
        """:meth:`frame` as a :class:`Table` (shown without pandas when it can be)."""
        return Table(["step", "revision", "message"],
                     (row.values() for row in self._rows()), self.frame)

    def _rows(self) -> list[dict[str, object]]:
        return [{"step": i + 1, "revision": s.revision, "message": (s.doc or "").strip()}
                for i, s in enumerate(self.scripts)]

def default_target(direction: str) -> str:
    """``head`` for an upgrade, ``-1`` for a downgrade."""
    return "head" if direction == "upgrade" else "-1"

def plan_migration(
    project: Project, direction: str, target: str | None = None, connection: Connection | None = None
) -> Plan:
    """Check direction and target against the database and the scripts; nothing runs."""
    if direction not in DIRECTIONS:
        raise ParameterError(f"direction {direction!r} must be 'upgrade' or 'downgrade'")
    state = get_state(project, connection)
    if state.unknown:
        raise RevisionError(
            f"the database records revision {', '.join(state.unknown)}, which is not in "
            f"{project.migrations_dir.name}/: run the recover_stamp runbook (purge=True) first "
            "(inspect_diff says which revision to stamp): `` "
            + runbook_command(project, "recover_stamp", purge=True,
                              stamp_revision="<the revision the schema matches>") + " ``"
        )
    if len(state.current) > 1:
        raise RevisionError(
            f"the database records several heads ({state.label}): merge them or stamp one first"
        )
    start = state.current[0] if state.current else None
    if target is not None and not str(target).strip():
        raise ParameterError(
            "target is empty: give a revision (an id, head, base, +N or -N) or leave it out"
        )
    goal = resolve_target(project, default_target(direction) if target is None else target,
                          state.current)
    if direction == "upgrade":
        if not is_ancestor(project, start, goal):
            raise RevisionError(
                f"target {goal or 'base'} is not above the current revision {start or 'base'}: "
                "use direction='downgrade'"
            )
        scripts = path_between(project, start, goal)
    else:
        if not is_ancestor(project, goal, start):
            raise RevisionError(
                f"target {goal or 'base'} is not below the current revision {start or 'base'}: "
                "use direction='upgrade'"
            )
        scripts = list(reversed(path_between(project, goal, start)))
    return Plan(direction=direction, start=start, target=goal, scripts=scripts,
                transactional_ddl=dialect_named(project.dialect).transactional_ddl)

def plan_to(project: Project, target: str = "head") -> Plan:
    """Plan the way to ``target`` in whichever direction it lies (for read-only review)."""
    state = get_state(project)
    # An unknown or several recorded revisions: plan_migration refuses them with the fix.
    start = state.current[0] if len(state.current) == 1 and not state.unknown else None
    goal = resolve_target(project, target, state.current)
    direction = "downgrade" if goal != start and is_ancestor(project, goal, start) else "upgrade"
    return plan_migration(project, direction, target)
