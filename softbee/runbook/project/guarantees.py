"""What a run guarantees on each database: docs/guarantees.md's table, made from the dialects' facts.

The facts live on the dialect objects (``dialects.py``); this module only words them, so the
table cannot promise what the code does not do (``tests/project/test_dialects.py``).
"""

from __future__ import annotations

from softbee.runbook.project.dialects import DIALECTS_IN_ORDER, Dialect

LOCKS = {
    "pg_advisory_lock": "session advisory lock",
    "lock_file": "lock file beside the database",
    "get_lock": "`GET_LOCK`",
    "none": "none",
}

RETRIES = {
    "savepoint": "in a run, every statement that changes something runs in a `SAVEPOINT`, its "
                 "first try waiting 50 ms for its lock (the longest the application queues behind "
                 "it); one that loses its lock (`lock_timeout`, a deadlock) is undone alone, the run "
                 "keeps what it did, an autovacuum holding the table is cancelled as the server "
                 "would (when the role may), and it tries again after a pause under a longer "
                 "`lock_timeout` (after the short tries, 3 retries, at most 60 s a statement by "
                 "default), each retry "
                 "reported; online phases' statements the same way, outside the transaction",
    "statement": "what it can: DDL commits on its own and a lock wait timeout (1205) undoes only "
                 "the statement, so it runs again under a longer `lock_wait_timeout` (whole "
                 "seconds, from 1 s), each retry reported; a deadlock is not retried, nor "
                 "anything when the server runs with `innodb_rollback_on_timeout`",
    "none": "none: the lock is the whole database file, so the busy timeout (`lock_timeout_ms`) "
            "is the one wait; retrying in steps would only be a longer busy timeout",
}


def _backfills_yield(d: Dialect) -> str:
    if d.online_phases:
        return ("between keyset batches: waits while a replica lags over `max_replica_lag_s` "
                "(when given), a VACUUM works on the table (`yield_to_vacuum`), or the pause "
                "file exists; each pause shown, recorded as `paused`, bounded by `max_pause_s`")
    where = "the run's transaction" if d.transactional_ddl else "the revision's step"
    return (f"no: an online backfill is one plain `UPDATE` inside {where}; nothing looks at "
            "replicas, VACUUM or the pause file")


def guarantees_table() -> str:
    """What a run guarantees on each database (docs/guarantees.md), from the facts above."""
    header = ["", *(d.label for d in DIALECTS_IN_ORDER)]
    facts = {
        "a run is atomic (one transaction)": lambda d: (
            "yes, unless it holds an online revision (next row)" if d.online_phases
            else "yes" if d.transactional_ddl
            else "no: each revision commits on its own; a failure says what it left applied"),
        "online revisions (`online.run_phases`)": lambda d: (
            "in phases: each revision commits on its own, its DDL under the guard, the online "
            "work outside any transaction; a killed run resumes" if d.online_phases
            else "the plain forms, inside the run's transaction" if d.transactional_ddl
            else "the plain forms, inside the revision's step"),
        "Alembic's `autocommit_block`": lambda d: (
            "an online phase: the work before it guarded and committed, the block in autocommit, "
            "recorded; a killed run resumes" if d.online_phases
            else "inside the run's transaction, under the guard" if d.transactional_ddl
            else "as Alembic runs it: the work before it committed, the block in autocommit"),
        "data-loss guard": lambda d: "after the migration, in its transaction: a loss is rolled back"
        + ("; online: per revision, on the tables it touches" if d.online_phases else "")
        if d.transactional_ddl else "before: predicted from the revisions' SQL and refused",
        "rehearsal": lambda d: "the real run, rolled back" if d.transactional_ddl
        else "on a scratch copy of the database",
        "one migration at a time": lambda d: LOCKS[d.lock_kind],
        "lock timeout": lambda d: d.lock_timeout_setting,
        "statement timeout": lambda d: d.statement_timeout_setting,
        "lock retries (`lock_retries`)": lambda d: RETRIES[d.lock_retry],
        "backfills yield (replica lag, VACUUM, pause file)": _backfills_yield,
        "backfill batch size": lambda d: (
            "follows the measured batch time (about `batch_ms`, 100 to 100,000 rows)"
            if d.online_phases else "one statement, no batches"),
    }
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for fact, value in facts.items():
        lines.append("| " + " | ".join([fact, *(value(d) for d in DIALECTS_IN_ORDER)]) + " |")
    return "\n".join(lines)
