"""Generate a revision the way the team guide says: specific message, at head, diff reviewed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from alembic import command

from softbee.runbook.errors import DestructiveChange, NotAtHead, ParameterError
from softbee.runbook.project import Project
from softbee.runbook.project.binds import refuse_several_databases
from softbee.runbook.review.diff import destructive_rows, model_diff
from softbee.runbook.review.state import State, get_state, single_head

# The guide's bad examples and their kin: they say nothing about what changed.
VAGUE_MESSAGES = frozenset(
    {"update database", "changes", "change", "update", "updates", "fix", "fixes", "wip",
     "migration", "new migration", "misc", "stuff", "db changes", "schema changes",
     "update schema", "update models", "auto", "autogenerate", "test"}
)
VERBS = frozenset(
    {"add", "create", "drop", "remove", "rename", "alter", "change", "make", "backfill",
     "index", "split", "merge", "move", "populate", "fill", "convert", "extend", "shorten",
     "introduce", "replace", "enforce", "relax", "set", "widen", "narrow", "allow", "require",
     "restrict", "link", "unlink", "store", "track", "record", "normalise", "normalize",
     "denormalize", "partition", "archive", "delete", "copy", "migrate", "seed", "constrain",
     "deduplicate", "default", "mark", "expand", "contract", "reindex", "revert", "rebuild"}
)
MIN_WORDS = 3


def check_message(message: str | None) -> str:
    """Return ``message`` stripped, or raise saying why it is too vague to describe a revision."""
    text = " ".join((message or "").split())
    example = 'e.g. "Add email verification fields to user model"'
    if not text:
        raise ParameterError(f"message is required: say what the revision does, {example}")
    if text.lower().rstrip(".!") in VAGUE_MESSAGES:
        raise ParameterError(f"message {text!r} is too vague: name the change and its table, {example}")
    words = re.findall(r"[A-Za-z_]+", text)
    if len(words) < MIN_WORDS:
        raise ParameterError(
            f"message {text!r} is too short: use at least {MIN_WORDS} words (a verb and what it "
            f"acts on), {example}"
        )
    if words[0].lower() not in VERBS:
        raise ParameterError(
            f"message {text!r} should start with a verb saying what happens (add, create, drop, "
            f"rename, ...), {example}"
        )
    return text


def require_at_head(project: Project) -> State:
    """The database's state; raise :class:`NotAtHead` when it is behind the scripts."""
    state = get_state(project)
    if state.heads:
        single_head(project)
    if not state.at_head:
        raise NotAtHead(
            f"the database is at {state.label}, not at head {','.join(state.heads)}: "
            "autogenerate against it would write a wrong revision; upgrade it first"
        )
    return state


@dataclass
class NewRevision:
    """A revision file written by :func:`generate_revision` (``path`` None when nothing to write)."""

    diff: pd.DataFrame
    path: Path | None
    revision: str | None

    @property
    def source(self) -> str:
        """The new file's text (empty when nothing was written)."""
        return self.path.read_text(encoding="utf-8") if self.path else ""


def generate_revision(
    project: Project,
    message: str,
    *,
    autogenerate: bool = True,
    allow_destructive: bool = False,
) -> NewRevision:
    """Write a revision from the model diff; refuse vague messages, stale databases, destruction."""
    text = check_message(message)
    # its autogenerate writes every bind's upgrade_<bind>() from one comparison: not per bind yet
    refuse_several_databases(project, "generate_revision")
    if autogenerate:
        require_at_head(project)
    with project.connect() as conn:
        diff = model_diff(project, conn) if autogenerate else pd.DataFrame()
        if autogenerate and diff.empty:
            return NewRevision(diff=diff, path=None, revision=None)
        destructive = destructive_rows(diff) if autogenerate else diff
        if autogenerate and not destructive.empty and not allow_destructive:
            listed = "; ".join(
                f"{r.operation} {r.table}{'.' + r.column if r.column else ''}"
                for r in destructive.itertuples()
            )
            raise DestructiveChange(
                f"the diff is destructive ({listed}): nothing written; check that every model is "
                "imported, then pass allow_destructive=True if this is intended",
                destructive.to_dict("records"),
            )
        conn.commit()
        with project.bound(conn) as config:
            if config.cmd_opts is not None:  # Flask-Migrate always sets it; env.py reads it
                config.cmd_opts.autogenerate = autogenerate
            script = command.revision(config, message=text, autogenerate=autogenerate)
        conn.commit()
    if script is None or isinstance(script, list):
        scripts = script or []
        script = scripts[0] if scripts else None
    if script is None:
        return NewRevision(diff=diff, path=None, revision=None)
    return NewRevision(diff=diff, path=Path(script.path), revision=script.revision)
