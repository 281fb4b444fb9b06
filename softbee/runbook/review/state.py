"""Where the database is and where the scripts lead: current, heads, pending, history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection

from softbee.runbook.errors import RevisionError
from softbee.runbook.online.phases import in_progress
from softbee.runbook.project import Project
from softbee.runbook.util.table import Table

if TYPE_CHECKING:  # pandas is imported where a DataFrame is made, when it is
    import pandas as pd


@dataclass(frozen=True)
class State:
    """The database's recorded revision(s) beside the scripts' head(s)."""

    current: tuple[str, ...]
    heads: tuple[str, ...]
    unknown: tuple[str, ...]
    # Online revisions a run left half-way, one line each from the phase record (phases.py).
    in_progress: tuple[str, ...] = ()

    @property
    def at_head(self) -> bool:
        """True when the database records exactly the scripts' heads."""
        return set(self.current) == set(self.heads)

    @property
    def label(self) -> str:
        """Current revision(s) as text, ``base`` for an empty database."""
        return ",".join(self.current) or "base"


def version_table_opts(project: Project) -> dict[str, str | None]:
    """The version table name and schema the project's env.py configures."""
    args = project.configure_args
    return {
        "version_table": args.get("version_table", "alembic_version"),
        "version_table_schema": args.get("version_table_schema"),
    }


def current_revisions(project: Project, connection: Connection | None = None) -> tuple[str, ...]:
    """Revision ids recorded in the database's version table (empty at base)."""
    if connection is None:
        with project.connect() as conn:
            return current_revisions(project, conn)
    context = MigrationContext.configure(connection, opts=version_table_opts(project))
    return tuple(context.get_current_heads())


def get_state(project: Project, connection: Connection | None = None) -> State:
    """Current revision(s), heads, and recorded revisions missing from the scripts."""
    if connection is None:
        with project.connect() as conn:
            return get_state(project, conn)
    script = project.script()
    current = current_revisions(project, connection)
    unknown = tuple(rev for rev in current if _lookup(script, rev) is None)
    return State(current=current, heads=tuple(script.get_heads()), unknown=unknown,
                 in_progress=tuple(in_progress(connection)))


def _lookup(script: ScriptDirectory, revision: str) -> Script | None:
    try:
        return script.get_revision(revision)
    except CommandError:
        return None


def merge_hint(heads: tuple[str, ...] | list[str]) -> str:
    """The command that merges several heads into one."""
    return f'Merge them first: `flask db merge -m "Merge heads {" and ".join(heads)}" {" ".join(heads)}`'


def single_head(project: Project) -> str:
    """The one head revision; several heads raise with the merge command to run."""
    heads = project.script().get_heads()
    if len(heads) == 1:
        return heads[0]
    if not heads:
        raise RevisionError(f"no revisions in {project.migrations_dir}: generate one first")
    raise RevisionError(f"the history has {len(heads)} heads ({', '.join(heads)}). {merge_hint(heads)}")


def get_script(project: Project, revision: str) -> Script:
    """The script for ``revision`` (id or unique prefix); unknown or ambiguous raise."""
    script = project.script()
    try:
        found = script.get_revision(revision)
    except CommandError as exc:
        matches = sorted(s.revision for s in script.walk_revisions() if s.revision.startswith(revision))
        if len(matches) > 1:
            raise RevisionError(
                f"revision {revision!r} is ambiguous: it starts {', '.join(matches)}; "
                "give more characters"
            ) from None
        raise RevisionError(
            f"revision {revision!r}: {exc} (see `flask db history` for valid ids)"
        ) from None
    if found is None:
        raise RevisionError(f"revision {revision!r} is base, not a script")
    return found


def resolve_target(project: Project, target: str, current: tuple[str, ...]) -> str | None:
    """Turn ``head``, ``base``, ``-N``, ``+N`` or an id into a revision id (None for base)."""
    target = str(target).strip()
    if target in ("head", "heads"):
        return single_head(project)
    if target == "base":
        return None
    if target[:1] in "+-" and target[1:].isdigit():
        steps = int(target)
        if len(current) > 1:
            raise RevisionError("the database records several heads: give an explicit revision")
        return _walk(project, current[0] if current else None, steps)
    return get_script(project, target).revision


def _walk(project: Project, start: str | None, steps: int) -> str | None:
    """Walk ``steps`` revisions up (positive) or down (negative) a linear history."""
    script = project.script()
    revision = start
    for taken in range(abs(steps)):
        if steps < 0:
            if revision is None:
                raise RevisionError(
                    f"cannot downgrade {abs(steps)} step(s): the database is only {taken} "
                    "revision(s) above base (use target='base' to remove everything)"
                )
            parents = down_revisions(get_script(project, revision))
            if len(parents) > 1:
                raise RevisionError(f"{revision} is a merge point: give an explicit revision")
            revision = parents[0] if parents else None
        else:
            children = [
                s.revision for s in script.walk_revisions()
                if down_revisions(s) == ((revision,) if revision else ())
            ]
            if not children:
                raise RevisionError(f"cannot upgrade {steps} step(s): head reached after {taken}")
            if len(children) > 1:
                raise RevisionError(f"the history branches after {revision}: give an explicit id")
            revision = children[0]
    return revision


def down_revisions(script: Script) -> tuple[str, ...]:
    """The revisions ``script`` sits on: none at base, several at a merge point."""
    down = script.down_revision
    if down is None:
        return ()
    return (down,) if isinstance(down, str) else tuple(down)


def path_between(project: Project, lower: str | None, upper: str | None) -> list[Script]:
    """Scripts strictly above ``lower`` up to and including ``upper``, oldest first."""
    if upper is None or upper == lower:
        return []
    script = project.script()
    try:
        revisions = list(script.iterate_revisions(upper, lower or "base"))
    except CommandError as exc:
        raise RevisionError(f"no path from {lower or 'base'} to {upper}: {exc}") from None
    return [rev for rev in reversed(revisions) if rev.revision != lower]


def is_ancestor(project: Project, ancestor: str | None, revision: str | None) -> bool:
    """True when ``ancestor`` is ``revision`` or lies below it."""
    if ancestor is None or ancestor == revision:
        return True
    if revision is None:
        return False
    return any(s.revision == ancestor for s in project.script().iterate_revisions(revision, "base"))


def revisions_frame(scripts: list[Script]) -> pd.DataFrame:
    """A table of revisions: id, parent, message, file."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "revision": s.revision,
                "down_revision": ",".join(down_revisions(s)) or "base",
                "message": (s.doc or "").strip(),
                "file": s.path.rsplit("/", 1)[-1],
            }
            for s in scripts
        ],
        columns=["revision", "down_revision", "message", "file"],
    )


def history_frame(project: Project) -> pd.DataFrame:
    """Every revision in the scripts, oldest first."""
    return revisions_frame(list(reversed(list(project.script().walk_revisions()))))


def state_frame(state: State) -> pd.DataFrame:
    """Current and head revisions side by side, with whether they match."""
    import pandas as pd

    return pd.DataFrame(_state_rows(state))


def state_table(state: State) -> Table:
    """:func:`state_frame` as a :class:`Table` (shown without pandas when it can be)."""
    return Table(["what", "revision"], (row.values() for row in _state_rows(state)),
                 lambda: state_frame(state))


def _state_rows(state: State) -> list[dict[str, str]]:
    return [
        {"what": "database (current)", "revision": state.label},
        {"what": "scripts (head)", "revision": ",".join(state.heads) or "none"},
        {"what": "at head", "revision": "yes" if state.at_head else "no"},
        *({"what": "in progress", "revision": line} for line in state.in_progress),
    ]
