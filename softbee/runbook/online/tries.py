"""An online phase's statement and its tries for a lock: short first, longer after, bounded.

An online phase's statements run in autocommit, outside the migration's transaction (so the
run's lock retries, ``engine/retries.py``, which work in savepoints, do not see them). A
statement waiting for its lock queues every later query of its table behind it, so on
PostgreSQL its first try waits :data:`FIRST_LOCK_TIMEOUT_MS` only, each retry twice as long
up to the session's ``lock_timeout``, with a pause between (the queued queries go through);
after a lost try an autovacuum holding its tables is cancelled as the server would
(``util/autovacuum.py``). A ``... CONCURRENTLY`` statement or a ``VALIDATE CONSTRAINT`` waits
without queueing the application (its lock does not conflict with reads and writes) and a
lost try of an index build throws the build away, so those wait the session's
``lock_timeout`` from the first try, as before.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from softbee.runbook.errors import first_line
from softbee.runbook.util.autovacuum import cancel_autovacuum
from softbee.runbook.util.compat import dbapi_connection
from softbee.runbook.util.error_codes import DEADLOCK_DETECTED, LOCK_NOT_AVAILABLE, error_code
from softbee.runbook.util.sqltext import table_names

RETRIES = 8
RETRY_FIRST_WAIT_S = 0.2
RETRY_MAX_WAIT_S = 2.0
FIRST_LOCK_TIMEOUT_MS = 50  # the first try of each statement: the longest the application queues
_LOST_LOCK = {LOCK_NOT_AVAILABLE, DEADLOCK_DETECTED}
_QUEUES_NOBODY = re.compile(r"\bCONCURRENTLY\b|\bVALIDATE\s+CONSTRAINT\b", re.IGNORECASE)


def execute_with_tries(connection: Connection, statement: Any, say: Callable[[str], None],
                       before_retry: Callable[[], None] | None = None) -> int:
    """Run one statement; on losing a lock to the application, pause and try again (bounded).

    Returns the rows it changed (0 when not known). ``before_retry`` undoes what a lost try
    may have left (an INVALID index).
    """
    session_ms = _lock_timeout_ms(connection)  # 0 or None: no timeout to shape (waits as set)
    timeout_ms = session_ms or 0
    if not _QUEUES_NOBODY.search(str(statement)):
        timeout_ms = min(FIRST_LOCK_TIMEOUT_MS, timeout_ms)
    try:
        for attempt in range(1, RETRIES + 2):
            if timeout_ms and timeout_ms != session_ms:
                connection.exec_driver_sql(f"SET lock_timeout = {timeout_ms}")
            elif attempt > 1 and session_ms:
                connection.exec_driver_sql(f"SET lock_timeout = {session_ms}")
            try:
                result = (connection.exec_driver_sql(statement) if isinstance(statement, str)
                          else connection.execute(statement))
                return max(result.rowcount, 0)
            except sa.exc.OperationalError as exc:
                if error_code(exc) not in _LOST_LOCK or attempt > RETRIES:
                    raise
                wait = min(RETRY_FIRST_WAIT_S * 2 ** (attempt - 1), RETRY_MAX_WAIT_S)
                autovacuum = _cancel_autovacuum(connection, statement)
                within = f" within {timeout_ms} ms" if timeout_ms else ""
                say(f"      lost a lock to the application{within} ({first_line(exc.orig)})"
                    f"{'; ' + autovacuum if autovacuum else ''}: retry {attempt}/{RETRIES} "
                    f"in {wait:.1f}s")
                time.sleep(wait)
                if before_retry is not None:
                    before_retry()
                timeout_ms = min(timeout_ms * 2, session_ms or 0)
        raise AssertionError("unreachable")  # pragma: no cover
    finally:
        if session_ms:
            try:
                connection.exec_driver_sql(f"SET lock_timeout = {session_ms}")
            except sa.exc.SQLAlchemyError:
                pass  # the connection is gone: the statement's own error is the one to tell


def _lock_timeout_ms(connection: Connection) -> int | None:
    """The session's ``lock_timeout`` in ms on PostgreSQL (0: none); None elsewhere."""
    if connection.dialect.name != "postgresql":
        return None
    shown = str(connection.exec_driver_sql("SHOW lock_timeout").scalar_one()).strip()
    number = shown.rstrip("abcdefghijklmnopqrstuvwxyz")
    scale = {"": 1, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
    return int(float(number) * scale[shown[len(number):]])


def _cancel_autovacuum(connection: Connection, statement: Any) -> str:
    """Cancel an autovacuum holding the statement's tables (util/autovacuum.py); what was done."""
    if connection.dialect.name != "postgresql":
        return ""
    cursor = dbapi_connection(connection).cursor()
    try:
        return cancel_autovacuum(cursor, table_names(str(statement)))
    finally:
        cursor.close()
