"""The scripts' graph as fleet status asks it: the states a database can be in, and how far.

Read once per ``fleet status`` (Alembic's ``ScriptDirectory`` on the migrations folder; no
Flask app, no kernel): :class:`History` places the revisions one database records against
the heads (or a chosen revision) as one of the states below, with a distance.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from alembic.script import ScriptDirectory

from softbee.runbook.errors import ConfigError

AT_HEAD = "at head"
BEHIND = "behind"
AHEAD = "ahead"
UNKNOWN = "unknown revision"
SEVERAL = "several heads"
UNREACHABLE = "unreachable"
#: The order states are shown in: the ones needing a person last, nearest the summary.
STATE_ORDER = (AT_HEAD, BEHIND, AHEAD, SEVERAL, UNKNOWN, UNREACHABLE)


def state_label(state: str, steps: int) -> str:
    """A state as shown in the table: ``behind by 2``, ``at head``..."""
    return f"{state} by {steps}" if state in (BEHIND, AHEAD) else state


def script_directory(migrations_dir: str | os.PathLike[str]) -> ScriptDirectory:
    """The revision scripts in ``migrations_dir`` (no Flask app needed)."""
    folder = Path(migrations_dir)
    if not (folder / "versions").is_dir():
        raise ConfigError(
            f"no revision scripts in {str(folder)!r} (versions/ missing): pass --migrations-dir"
        )
    return ScriptDirectory(str(folder))


class History:
    """The scripts' graph, asked only what the fleet table needs: ancestors and distances."""

    def __init__(self, script: ScriptDirectory, to: str | None = None) -> None:
        self.parents: dict[str, tuple[str, ...]] = {}
        for revision in script.walk_revisions():
            down = revision.down_revision
            self.parents[revision.revision] = (
                () if down is None else (down,) if isinstance(down, str) else tuple(down)
            )
        self.heads = tuple(script.get_heads())
        if to not in (None, "head", "heads"):
            matches = [rev for rev in self.parents if rev.startswith(str(to))]
            if len(matches) != 1:
                raise ConfigError(
                    f"revision {to!r} is {'ambiguous' if matches else 'not in the scripts'}: "
                    "give a revision id from `flask db history`"
                )
            self.heads = (matches[0],)
        self._ancestors: dict[str, frozenset[str]] = {}

    def ancestors(self, revision: str) -> frozenset[str]:
        """``revision`` and every revision below it."""
        if revision not in self._ancestors:
            found: set[str] = set()
            stack = [revision]
            while stack:
                current = stack.pop()
                if current in found:
                    continue
                found.add(current)
                stack.extend(self.parents.get(current, ()))
            self._ancestors[revision] = frozenset(found)
        return self._ancestors[revision]

    def classify(self, current: Sequence[str]) -> tuple[str, int]:
        """``(state, steps)`` of a database recording ``current`` against the heads."""
        if len(current) > 1:
            return SEVERAL, 0
        if any(rev not in self.parents for rev in current):
            return UNKNOWN, 0
        if set(current) == set(self.heads):
            return AT_HEAD, 0
        below = self.ancestors(current[0]) if current else frozenset()
        wanted: set[str] = set()
        for head in self.heads:
            wanted |= self.ancestors(head)
        if below <= wanted:
            return BEHIND, len(wanted - below)
        return AHEAD, len(below - wanted)
