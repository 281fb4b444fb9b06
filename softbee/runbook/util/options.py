"""A run's options as one object: built once where the run starts, handed down whole.

``run_migration`` (and ``capture_plan``, ``recover``) build a :class:`RunOptions` from their
keyword arguments, or take one as ``options=``; below them the engine, the guards and the
routing of ``env.py`` take the object (or its :class:`Timeouts`), not a dozen parameters.
Only the dialects' leaf methods, which write the settings into SQL, take the two numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from softbee.runbook.errors import ParameterError

# A run's lock timeout where its runbook has no lock_timeout_ms (inspect_diff, generate_revision,
# fleet status): every session the runbooks open waits at most this long for a lock.
DEFAULT_LOCK_TIMEOUT_MS = 5000


@dataclass(frozen=True)
class Timeouts:
    """The run's timeouts, given to every session the runbooks open (None: the server's setting).

    The lock timeout bounds every wait for a table another session holds; the statement
    timeout is left to the server unless the run sets one (an exact count of a huge table may
    rightly take minutes).
    """

    lock_timeout_ms: int | None = DEFAULT_LOCK_TIMEOUT_MS
    statement_timeout_ms: int | None = None


@dataclass(frozen=True)
class RunOptions:
    """How one migration run goes: what it checks, what it may do, how long it waits."""

    round_trip: bool = False  # upgrade, downgrade, upgrade again, checked at each end
    count_mode: str = "exact"  # "exact" row counts, or "estimate" (PostgreSQL statistics)
    allow_data_loss: bool = False  # let a run that loses rows, tables or values commit
    rehearse: bool = False  # run for real, then roll back (a scratch copy without DDL rollback)
    lock_wait_s: float = 0.0  # how long to wait for another run's migration lock
    lock_timeout_ms: int | None = DEFAULT_LOCK_TIMEOUT_MS  # each statement's wait for a lock
    statement_timeout_ms: int | None = None  # each statement's run time (None: the server's)
    confirm: str | None = None  # on production: the database's name, said back
    production: bool | None = None  # treat the database as production (None: FLASK_ENV says)

    @property
    def timeouts(self) -> Timeouts:
        """The lock and statement timeouts every session of the run gets."""
        return Timeouts(self.lock_timeout_ms, self.statement_timeout_ms)

    def but(self, **changes: Any) -> RunOptions:
        """These options with ``changes`` (``options.but(allow_data_loss=True)``)."""
        return replace(self, **changes)

    @classmethod
    def given(cls, options: RunOptions | None, **keywords: Any) -> RunOptions:
        """``options``, or one built from an entry point's keyword arguments; not both.

        An entry point keeps its keyword arguments (``run_migration(..., rehearse=True)``)
        and takes ``options=`` too: a keyword left at its default defers to ``options``;
        one that is not, beside ``options``, is refused rather than silently dropped.
        """
        if options is None:
            return cls(**keywords)
        defaults = {f.name: f.default for f in fields(cls)}
        clashing = sorted(name for name, value in keywords.items() if value != defaults[name])
        if clashing:
            raise ParameterError(
                f"pass either options= or {', '.join(clashing)}, not both: put "
                f"{'them' if len(clashing) > 1 else 'it'} in the options (options.but(...))")
        return options
