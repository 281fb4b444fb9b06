"""A database driver's error code, read in one place whatever the driver.

PostgreSQL's SQLSTATE and MySQL's error number are what the runbooks act on (a lock timeout
named with its blocker, an online phase's lock retry); each driver carries them differently.
Every caller asks :func:`error_code`; ``tests/project/test_dialects.py`` fails when another
module reads a driver's error attributes itself.
"""

from __future__ import annotations

# PostgreSQL's SQLSTATEs the runbooks act on (what error_code returns for them).
LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout reached
QUERY_CANCELED = "57014"  # statement_timeout reached, or a cancel request
DEADLOCK_DETECTED = "40P01"
UNDEFINED_TABLE = "42P01"


def error_code(error: BaseException) -> str | int | None:
    """The driver's error code for ``error``: MySQL's error number, PostgreSQL's SQLSTATE, or None.

    The one place a driver's error is read, whatever the driver. PyMySQL and mysqlclient
    (``MySQLdb``) raise with ``(errno, message)`` as their arguments; the number comes first,
    since PyMySQL 1.2 also carries MySQL's coarse ``sqlstate`` ("HY000"). psycopg 3 (and
    SQLAlchemy's asyncpg adapter) carry ``sqlstate``, psycopg2 ``pgcode``, both ``diag.sqlstate``.
    ``error`` may be SQLAlchemy's wrapper (the driver's error is its ``orig``) or the driver's.
    """
    orig = getattr(error, "orig", None) or error
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and not isinstance(args[0], bool):
        return args[0]
    for code in (getattr(orig, "sqlstate", None), getattr(orig, "pgcode", None),
                 getattr(getattr(orig, "diag", None), "sqlstate", None)):
        if isinstance(code, str) and code:
            return code
    return None
