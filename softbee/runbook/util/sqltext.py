"""SQL text: split it into statements the way PostgreSQL reads them.

Semicolons inside quotes, dollar quotes and comments do not end a statement. Alembic's
offline output marks each revision with ``-- Running upgrade X -> Y``; every statement
remembers the revision it belongs to. Used by lint (offline SQL) and recover (``fix_sql``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


def one_line(text: Any) -> str:
    """``text`` with all whitespace runs collapsed to single spaces."""
    return " ".join(str(text).split())


_TABLE_AFTER = re.compile(
    r"(?:ALTER TABLE|DROP TABLE|INTO|UPDATE|FROM|ON|INDEX \S+ ON|REFERENCES)\s+"
    r"(?:ONLY\s+)?(?:IF EXISTS\s+)?\"?(\w+)\"?",
    re.IGNORECASE,
)


def table_names(statement: str) -> list[str]:
    """The tables a statement names after ``ALTER TABLE``, ``FROM``, ``REFERENCES``...; sorted."""
    return sorted(set(_TABLE_AFTER.findall(statement)))


_RUNNING = re.compile(r"--\s*Running\s+(upgrade|downgrade)\s+(.*?)\s*->\s*(.*?)\s*$", re.IGNORECASE)
_DOLLAR = re.compile(r"\$(?:[A-Za-z_]\w*)?\$")


@dataclass(frozen=True)
class Statement:
    """One statement of a SQL text, and the revision whose ``-- Running`` comment precedes it."""

    start: int
    text: str  # as written
    code: str  # string literals and comments blanked, whitespace collapsed: safe for regexes
    revision: str | None


def split_sql(sql: str) -> list[Statement]:
    """Split on ``;`` outside quotes, dollar quotes and comments, tracking the revision."""
    masked = list(sql)
    statements: list[Statement] = []
    revision: str | None = None
    start: int | None = None
    i, n = 0, len(sql)

    def blank(a: int, b: int) -> None:
        masked[a:b] = [" "] * (b - a)

    while i < n:
        c = sql[i]
        if sql.startswith("--", i):
            j = n if (j := sql.find("\n", i)) == -1 else j
            if start is None and (m := _RUNNING.match(sql, i, j)):
                revision = (m[3] if m[1].lower() == "upgrade" else m[2]) or None
            blank(i, j)
            i = j
        elif sql.startswith("/*", i):
            j = n if (j := sql.find("*/", i + 2)) == -1 else j + 2
            blank(i, j)
            i = j
        elif c == ";":
            if start is not None:
                code = one_line("".join(masked[start:i]))
                statements.append(Statement(start, sql[start:i], code, revision))
            start = None
            i += 1
        elif c.isspace():
            i += 1
        else:
            start = i if start is None else start
            if c in "'\"":
                backslash = c == "'" and i > 0 and sql[i - 1] in "eE"
                j = i + 1
                while j < n and not (sql[j] == c and sql[j + 1 : j + 2] != c):
                    j += 2 if (backslash and sql[j] == "\\") or sql[j : j + 2] == c * 2 else 1
                if c == "'":
                    blank(i + 1, min(j, n))
                i = j + 1
            elif c == "$" and (tag := _DOLLAR.match(sql, i)):
                j = n if (j := sql.find(tag[0], tag.end())) == -1 else j + len(tag[0])
                blank(i + 1, j - 1)
                i = j
            else:
                i += 1
    if start is not None:
        statements.append(Statement(start, sql[start:], one_line("".join(masked[start:])),
                                     revision))
    return statements
