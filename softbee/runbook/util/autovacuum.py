"""An autovacuum in the way of a migration's lock, on PostgreSQL: cancel it as the server would.

A ``VACUUM`` started by autovacuum holds SHARE UPDATE EXCLUSIVE on its table, which every
``ALTER TABLE`` conflicts with; and every query of the table queues behind the waiting
``ALTER``. PostgreSQL cancels such an autovacuum itself, but only once the waiter has waited
``deadlock_timeout`` (1 s by default): a second of the application queued. A migration that
tries its locks in short attempts (``engine/retries.py``, ``online/tries.py``) never waits
that long, so after a lost attempt it does what the server would have done: it cancels the
autovacuum of the tables it wants (never one that prevents wraparound, as the server does
not either), when its role may (a superuser; from PostgreSQL 17 a member of
``pg_signal_autovacuum_worker``). The table is vacuumed again by a later autovacuum.

A role that may not read other sessions' activity (``pg_read_all_stats``) does not see that
an autovacuum holds the table: for it this finds nothing, and the retries go on growing
until the server cancels the autovacuum itself (after ``deadlock_timeout``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_WORKERS = (
    "SELECT DISTINCT a.pid, c.relname FROM pg_locks l "
    "JOIN pg_class c ON c.oid = l.relation JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.granted AND a.backend_type = 'autovacuum worker' AND c.relname = ANY(%s) "
    "AND position('wraparound' in coalesce(a.query, '')) = 0 ORDER BY a.pid"
)
_MAY_CANCEL = (  # current_user: the role in force (SET ROLE included), as pg_cancel_backend checks
    "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) OR EXISTS (SELECT 1 "
    "FROM pg_roles WHERE rolname = 'pg_signal_autovacuum_worker' "
    "AND pg_has_role(current_user, oid, 'MEMBER'))"
)


def cancel_autovacuum(cursor: Any, tables: Sequence[str]) -> str:
    """Cancel the autovacuums holding a lock on ``tables`` (DBAPI ``cursor``); what was done, or "".

    Returns a phrase for the run's progress line: ``"cancelled autovacuum of users (pid
    4711)"``, or ``"autovacuum of users (pid 4711) holds it; this role may not cancel it"``;
    an empty string when no autovacuum holds a lock on those tables.
    """
    if not tables:
        return ""
    cursor.execute(_WORKERS, (list(tables),))
    workers = [(int(pid), str(relname)) for pid, relname in cursor.fetchall()]
    if not workers:
        return ""
    named = ", ".join(f"{relname} (pid {pid})" for pid, relname in workers)
    cursor.execute(_MAY_CANCEL)
    row = cursor.fetchone()
    if not (row and row[0]):
        return (f"autovacuum of {named} holds it; this role may not cancel it (PostgreSQL "
                "does, once a lock has waited deadlock_timeout)")
    for pid, _relname in workers:
        cursor.execute("SELECT pg_cancel_backend(%s)", (pid,))
        cursor.fetchone()
    return f"cancelled autovacuum of {named}, as PostgreSQL does for a lock that waits"
