"""Database URLs: normalise them for psycopg2 or PyMySQL and never show their passwords.

SQLAlchemy is imported only to parse a URL: masking passwords in text (archive,
redaction, the CLI's output) needs nothing but the regular expressions below.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

# scheme://user:password@host  ->  scheme://user:***@host
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@'\"]*:)(?P<pw>[^\s@'\"]+)(?P<at>@)")

MASK = "***"

# The start of SQLAlchemy's own URL pattern (``sqlalchemy.engine.url._parse_url``, the same
# in 1.4 and 2.x), enough to find the password it would: redaction needs no SQLAlchemy import.
_SQLALCHEMY_URL = re.compile(r"(?P<name>[\w\+]+)://(?:(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@)?")


class BadDatabaseURL(ValueError):
    """A database URL that cannot be parsed."""


# Driverless schemes and the driver each one runs on (a URL that names its driver is kept).
DEFAULT_DRIVERS: dict[str, str] = {
    "postgres": "postgresql+psycopg2",
    "postgresql": "postgresql+psycopg2",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
}


def normalise_url(url: str) -> str:
    """Return ``url`` with a driverless scheme mapped to the driver Soft-Bee installs.

    ``postgres://`` and ``postgresql://`` run on psycopg2; ``mysql://`` and ``mariadb://``
    on PyMySQL (SQLAlchemy's own defaults, mysqlclient, is not a dependency).
    """
    url = url.strip()
    scheme, separator, rest = url.partition("://")
    if separator and scheme.lower() in DEFAULT_DRIVERS:
        url = f"{DEFAULT_DRIVERS[scheme.lower()]}://{rest}"
    return url


def parse_url(url: str) -> URL:
    """Parse and normalise ``url``; raise :class:`BadDatabaseURL` with a one-line reason."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(normalise_url(url))
    except (ArgumentError, ValueError) as exc:
        raise BadDatabaseURL(
            f"malformed database URL {redact_url(url)!r}: expected "
            "dialect://user:password@host:port/database or sqlite:///path/to/file.db"
        ) from exc
    return parsed


def redact_url(url: str | URL) -> str:
    """Return ``url`` as text with any password replaced by ``***``."""
    if not isinstance(url, str):  # a SQLAlchemy URL
        return url.render_as_string(hide_password=True)
    return redact_text(url)


# SQL that sets a password: CREATE/ALTER ROLE ... [ENCRYPTED] PASSWORD 'secret'
_SQL_PASSWORD = re.compile(r"(?P<head>\bPASSWORD\s+)'(?:[^']|'')*'", re.IGNORECASE)


def redact_text(text: str) -> str:
    """Mask every ``scheme://user:password@`` password and SQL ``PASSWORD '...'`` in free text."""
    return _SQL_PASSWORD.sub(lambda m: m.group("head") + f"'{MASK}'", mask_url_passwords(text))


def mask_url_passwords(text: str) -> str:
    """Mask the password of every ``scheme://user:password@`` in ``text``, and nothing else."""
    return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK + m.group("at"), text)


def url_passwords(text: str) -> set[str]:
    """The passwords of the URLs in ``text`` (as written, and percent-decoded)."""
    found = {m.group("pw") for m in _URL_PASSWORD.finditer(text)}
    stripped = text.strip()
    if "://" in stripped and not any(c.isspace() for c in stripped):
        password = sqlalchemy_password(stripped)
        if password:
            found.add(password)
        try:
            password = urlsplit(stripped).password
        except ValueError:
            password = None
        if password:
            found.add(password)
    return found


def sqlalchemy_password(url: str) -> str | None:
    """The password SQLAlchemy's ``make_url(url)`` would find (decoded), without importing it."""
    match = _SQLALCHEMY_URL.match(url)
    if match is None or match.group("password") is None:
        return None
    return unquote(match.group("password"))
