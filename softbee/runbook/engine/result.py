"""What a run did: its steps, its result and what it shows after, and who is told of each step.

The one-transaction run (``migrate``), MySQL/MariaDB's stepwise one (``stepwise``) and
PostgreSQL's online plans (``online_run``) all hand back a :class:`MigrationResult`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from alembic.script import Script
from sqlalchemy.engine import Connection

from softbee.runbook.engine.dataloss import Snapshot
from softbee.runbook.review.counts import compare_counts, compared_rows, compared_table
from softbee.runbook.review.diff import schema_change_rows, schema_changes
from softbee.runbook.review.plan import Plan
from softbee.runbook.review.state import State
from softbee.runbook.util.table import Table

if TYPE_CHECKING:  # pandas is imported where a DataFrame is made, when it is
    import pandas as pd

Progress = Callable[[str], None]


class StepObserver(Protocol):
    """Told when each revision of a run starts and ends (``capture.StatementRecorder`` is one)."""

    def step_started(self, connection: Connection, script: Script) -> None:
        """``script`` is about to run on ``connection``."""

    def step_finished(self, connection: Connection, script: Script) -> None:
        """``script`` has run (its statements are in the run's transaction)."""


@dataclass
class Step:
    """One revision applied, and how long it took."""

    direction: str
    revision: str
    message: str
    seconds: float


@dataclass
class MigrationResult:
    """What a run did (or, for a rehearsal, would have done)."""

    plan: Plan
    end: str | None
    steps: list[Step]
    before: Snapshot
    after: Snapshot
    schema_before: dict[str, dict[str, str]]
    schema_after: dict[str, dict[str, str]]
    losses: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    locks: list[dict[str, Any]] = field(default_factory=list)
    sequences_moved: list[dict[str, Any]] = field(default_factory=list)
    rehearsal: bool = False
    committed: bool = False
    phases: list[dict[str, Any]] = field(default_factory=list)
    round_trip: str = ""  # a round trip's result in one sentence (empty: none was asked for)
    lock_retries: list[dict[str, Any]] = field(default_factory=list)  # engine/retries.py

    def counts_frame(self) -> pd.DataFrame:
        """Rows per table before, after and the difference."""
        return compare_counts(self.before.rows, self.after.rows)

    def counts_table(self) -> Table:
        """:meth:`counts_frame` as a :class:`Table` (shown without pandas when it can be)."""
        return compared_table(self.before.rows, self.after.rows)

    def steps_frame(self) -> pd.DataFrame:
        """Each revision applied with its time in seconds."""
        import pandas as pd

        return pd.DataFrame(
            [vars(step) for step in self.steps],
            columns=["direction", "revision", "message", "seconds"],
        )

    def steps_table(self) -> Table:
        """:meth:`steps_frame` as a :class:`Table` (its seconds are drawn by pandas)."""
        return Table(["direction", "revision", "message", "seconds"],
                     ([step.direction, step.revision, step.message, step.seconds]
                      for step in self.steps), self.steps_frame)

    def schema_frame(self) -> pd.DataFrame:
        """Tables and columns added, removed or changed between before and after."""
        return schema_changes(self.schema_before, self.schema_after)

    def phases_frame(self) -> pd.DataFrame:
        """Each phase of the online revisions: where it ran, its time and rows (empty when none)."""
        import pandas as pd

        return pd.DataFrame(self.phases, columns=["revision", "phase", "phases", "name", "runs",
                                                  "seconds", "rows", "skipped"])

    def losses_frame(self) -> pd.DataFrame:
        """What the data-loss guard found (empty when nothing was lost)."""
        import pandas as pd

        return pd.DataFrame(self.losses, columns=["kind", "object", "lost", "detail"])

    def review(self) -> list[tuple[str, pd.DataFrame | None]]:
        """What to show after the run, as (title, table): schema, losses, checks, locks...

        pandas is imported only when there is a table to show.
        """
        changed = schema_change_rows(self.schema_before, self.schema_after)
        shown: list[tuple[str, pd.DataFrame | None]] = [
            ("**Schema changes:**", self.schema_frame()) if changed
            else ("No schema change.", None)
        ]
        if not (self.phases or self.losses or self.round_trip or self.locks
                or self.sequences_moved):
            return shown
        import pandas as pd

        if self.phases:
            shown.append(("**Phases of the online revisions** (each committed on its own; "
                          "a re-run skips the finished ones):", self.phases_frame()))
        if self.losses:
            title = ("**Data this would lose:**" if self.rehearsal
                     else "**Data lost (allowed by `allow_data_loss=True`)**")
            shown.append((title, self.losses_frame()))
        if self.round_trip:
            shown.append((f"**Round trip:** {self.round_trip}",
                           pd.DataFrame(self.checks) if self.checks else None))
        if self.locks:
            shown.append(("**Locks the migration took:**", pd.DataFrame(self.locks)))
        if self.sequences_moved:
            shown.append(("**Sequences the rehearsal advanced** (PostgreSQL never rolls back "
                          "`nextval`):", pd.DataFrame(self.sequences_moved)))
        return shown

    def headline(self, final: State) -> str:
        """One Markdown line: the outcome and the revision the database is at now."""
        head = " (head)" if final.at_head else ""
        return f"**{self.summary()['outcome']}** — the database is at `{final.label}`{head}"

    def check_round_trip(self) -> None:
        """Raise AssertionError when a round trip did not give back the same schema and counts."""
        if self.checks and not all(check["ok"] for check in self.checks):
            raise AssertionError(
                "round trip did not come back to the same schema and row counts: see the table above"
            )

    def summary(self) -> dict[str, Any]:
        """Facts for the run record: revisions before and after, row deltas, outcome."""
        if self.rehearsal and not self.plan.transactional_ddl:
            outcome = (f"rehearsal: would end at {self.end or 'base'}; it ran on a scratch copy, "
                       "dropped: the database is as it was")
        elif self.rehearsal:
            outcome = f"rehearsal: would end at {self.end or 'base'}; everything was rolled back"
        else:
            outcome = f"{self.plan.direction} {self.plan.start or 'base'} -> {self.end or 'base'}"
        if self.round_trip:
            outcome += f"; round trip {self.round_trip}"
        return {
            "revision_before": self.plan.start or "base",
            "revision_after": (self.plan.start if self.rehearsal else self.end) or "base",
            "row_counts": compared_rows(self.before.rows, self.after.rows),
            "data_loss": self.losses,
            "rehearsal": self.rehearsal,
            "outcome": outcome,
            **({"round_trip": self.round_trip} if self.round_trip else {}),
            **({"lock_retries": self.lock_retries} if self.lock_retries else {}),
        }
