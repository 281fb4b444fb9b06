"""The archive and the databases vouch for each other (``archive verify --database``).

A run that writes to a database leaves two records of itself: its rows in the database's
history table, and its archived record, whose facts (``history``) repeat what it wrote and
name the database by the identity its history table was created with (``database_id``, a
UUID: two URLs for one database, or one URL reused for a new database, cannot confuse it).
Checked both ways:

- every history row with a run id has its archived record, with the same rows (direction,
  from, to, outcome), and a run that stopped (``rolled back``, ``half-applied``, ``phase k
  of n``) is archived as failed: a deleted record, or a chain rewritten to say something
  else, is caught by any database the run touched;
- every archived run that wrote to this database has its rows there: a history row deleted
  or edited by hand is caught by the archive.

Runs archived before the history existed carry no ``history`` fact and are counted, not
checked. A multi-database run keeps one fact per bind (``history_bind_<bind>``), each checked
against its bind's database. Nothing here writes, to the database or the archive.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from softbee.runbook.archive.chain import Problem, read_index
from softbee.runbook.errors import DatabaseError, first_line
from softbee.runbook.history import table as tbl
from softbee.runbook.history.recorder import BIND_HISTORY_PREFIX, row_fact, rows_digest
from softbee.runbook.project import make_engine
from softbee.runbook.project.sessions import Timeouts, open_session
from softbee.runbook.util.history_name import HISTORY_TABLE
from softbee.urls import parse_url, redact_text, redact_url

#: The bound on reading a database's history: its lock timeout (ms); the statement timeout is 6 times it.
READ_TIMEOUT_MS = 5000
#: Outcomes that say a run stopped before it finished.
STOPPED = (tbl.ROLLED_BACK, tbl.HALF_APPLIED, "phase ")


@dataclass
class Vouched:
    """What ``archive verify --database`` found for one database."""

    database: str  # redacted URL, or a target's name
    database_id: str | None
    runs_checked: int = 0
    unchecked: int = 0  # archived runs on this database with no history facts (older runs)
    problems: list[Problem] = field(default_factory=list)

    def line(self) -> str:
        """One line: OK and how much was checked, or how many problems."""
        if self.database_id is None and not self.problems:
            return f"{self.database}: no history table, nothing to check"
        if self.problems:
            return f"{self.database}: {len(self.problems)} problem(s)"
        older = f"; {self.unchecked} older run(s) without history facts not checked" if (
            self.unchecked) else ""
        return (f"{self.database}: OK, {self.runs_checked} run(s) agree with the archive "
                f"(database {self.database_id}){older}")


def database_rows(url: str, name: str = HISTORY_TABLE) -> list[tbl.HistoryRow]:
    """The history rows of the database at ``url`` (read-only, bounded; none without a table)."""
    parsed = parse_url(url)
    engine = make_engine(parsed)  # connect timeout; the session gets lock and statement timeouts
    try:
        with open_session(engine, Timeouts(READ_TIMEOUT_MS, 6 * READ_TIMEOUT_MS)) as conn:
            return tbl.read_rows(conn, name)
    except sa.exc.DBAPIError as exc:
        reason = redact_text(first_line(getattr(exc, "orig", None) or exc))
        raise DatabaseError(f"cannot read the history of {redact_url(parsed)}: {reason}") from None
    finally:
        engine.dispose()


def history_fact(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """A record's ``history`` fact (None: the run kept none)."""
    fact = (record.get("extra_facts") or {}).get("history")
    return fact if isinstance(fact, dict) else None


def fact_for(record: Mapping[str, Any], identity: str | None) -> dict[str, Any] | None:
    """The history fact of ``record`` naming database ``identity``, else its ``history`` fact.

    A multi-database run keeps one fact per bind (``history_bind_<bind>``); its ``history``
    is the last bind's.
    """
    extra = record.get("extra_facts") or {}
    for key, fact in extra.items():
        if (key.startswith(BIND_HISTORY_PREFIX) and isinstance(fact, dict)
                and fact.get("database_id") == identity):
            return fact
    return history_fact(record)


def vouch(records: Iterable[Mapping[str, Any]], rows: list[tbl.HistoryRow],
          database: str) -> Vouched:
    """Check one database's history ``rows`` and the archive's ``records`` against each other."""
    identity = rows[0].database_id if rows else None
    found = Vouched(database=database, database_id=identity)
    if identity is None:
        return found
    by_run: dict[str, list[tbl.HistoryRow]] = {}
    for row in rows:
        if row.run_id and row.outcome != tbl.CREATED:
            by_run.setdefault(row.run_id, []).append(row)
    archived = {str(r.get("run_id")): r for r in records}
    said = {run: fact_for(r, identity) for run, r in archived.items()}
    ours = {run for run, fact in said.items()
            if fact and fact.get("enabled") and fact.get("database_id") == identity}
    found.unchecked = sum(1 for run, r in archived.items() if not said[run] and _same_database(
        r, database))
    for run, run_rows in by_run.items():
        where = f"{database}: run {run}"
        record = archived.get(run)
        if record is None:
            found.problems.append(Problem(where, (
                f"{len(run_rows)} history row(s) ({_describe(run_rows)}) have no archived record: "
                "the record was deleted, or this is not the archive that run wrote to")))
            continue
        if run not in ours:
            found.problems.append(Problem(where, (
                "its archived record does not name this database "
                f"(history fact: {said[run] or 'none'}): the record was rewritten")))
            continue
        found.problems += _compare(where, record, said[run] or {}, run_rows)
    for run in sorted(ours - set(by_run)):
        expected = int((said[run] or {}).get("rows") or 0)
        if expected:
            found.problems.append(Problem(f"{database}: run {run}", (
                f"the archive says it wrote {expected} history row(s); the database has none: "
                "deleted by hand")))
    found.runs_checked = len(ours | set(by_run))
    return found


def _compare(where: str, record: Mapping[str, Any], fact: Mapping[str, Any],
             rows: list[tbl.HistoryRow]) -> list[Problem]:
    problems = []
    got = [row_fact(row) for row in rows]
    if fact.get("rows") != len(rows) or fact.get("sha256") != rows_digest(rows):
        problems.append(Problem(where, (
            f"the archive says it wrote {fact.get('rows')} history row(s) (sha256 "
            f"{str(fact.get('sha256'))[:12]}…); the database has {len(rows)}: "
            f"{_describe(rows) or 'none'}: a history row or the archived record was edited "
            "or deleted")))
    stopped = [row for row in rows if row.outcome.startswith(STOPPED)]
    if stopped and record.get("status") == "passed":
        problems.append(Problem(where, (
            f"archived as passed, but the database records it {stopped[-1].outcome}: "
            "the record was rewritten")))
    before = fact.get("revision_before") or record.get("revision_before")  # a bind's own first
    first = next((f for f in got if f["direction"] in ("upgrade", "downgrade")), None)
    if first and before and before != first["from"]:
        problems.append(Problem(where, (
            f"archived as starting at {before}; its first history row starts at "
            f"{first['from']}: the record was rewritten")))
    return problems


def _same_database(record: Mapping[str, Any], database: str) -> bool:
    """An older record (no history fact): whether its identity names ``database`` (best effort)."""
    identity = record.get("database") or {}
    name = str(identity.get("database") or "")
    return bool(name) and (name in database or Path(name).name in database)


def _describe(rows: list[tbl.HistoryRow]) -> str:
    return _describe_facts([row_fact(row) for row in rows])


def _describe_facts(facts: list[Mapping[str, Any]]) -> str:
    return ", ".join(f"{f.get('direction')} {f.get('from')} -> {f.get('to')} {f.get('outcome')}"
                     for f in facts)


def verify_database(archive_dir: Path, url: str, name: str = HISTORY_TABLE,
                    label: str | None = None) -> Vouched:
    """``archive verify --database URL``: the archive at ``archive_dir`` against one database."""
    return vouch(read_index(archive_dir), database_rows(url, name),
                 label or redact_url(parse_url(url)))
