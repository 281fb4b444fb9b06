"""Production's sizes without production's data: a small JSON of tables, rows, bytes and indexes.

``softbee-runbook stats export`` reads them from a real database and ``review --stats``
lints against them. What is read, per database, is an estimate the server already keeps
(no table is scanned on PostgreSQL or MariaDB):

* PostgreSQL: ``pg_class.reltuples`` (``pg_stat_user_tables.n_live_tup`` for a table never
  analysed), ``pg_table_size`` and ``pg_indexes_size``, each index's ``pg_relation_size``;
* MySQL/MariaDB: ``information_schema.TABLES`` (``TABLE_ROWS``, ``DATA_LENGTH``,
  ``INDEX_LENGTH``; one index's own size is not kept there);
* SQLite: ``count(*)`` per table (a file small enough to be SQLite is cheap to count), bytes
  from ``dbstat`` where SQLite is built with it.

Columns (name and type) and indexes (name, columns, unique) come from SQLAlchemy's inspector.
The file holds no row, no value, no host and no password: the dialect, the database's name,
the server version and the sizes; ``version`` is the format's (:data:`STATS_VERSION`).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from softbee.runbook.errors import ReviewError
from softbee.runbook.review.expected import SKIPPED

STATS_FORMAT = "softbee-runbook-stats"
STATS_VERSION = 1


@dataclass(frozen=True)
class TableStats:
    """One table's size: estimated rows, bytes of the table and of its indexes, columns, indexes."""

    rows: int | None = None
    table_bytes: int | None = None
    index_bytes: int | None = None
    columns: dict[str, str] = field(default_factory=dict)
    indexes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int | None:
        """Table and indexes together (None when neither is known)."""
        if self.table_bytes is None and self.index_bytes is None:
            return None
        return (self.table_bytes or 0) + (self.index_bytes or 0)


@dataclass(frozen=True)
class Stats:
    """The sizes of one database, by table name (lower case)."""

    dialect: str
    tables: dict[str, TableStats]
    database: str = ""
    server_version: str = ""
    exported_at: str = ""
    source: str = ""  # the file it was read from

    def table(self, name: str | None) -> TableStats | None:
        """The stats of ``name`` (bare or schema-qualified, any case), or None."""
        if not name:
            return None
        key = name.lower()
        return self.tables.get(key) or self.tables.get(key.rsplit(".", 1)[-1])

    def row_counts(self) -> dict[str, int]:
        """Rows per table, where known (what lint reads)."""
        return {name: t.rows for name, t in self.tables.items() if t.rows is not None}

    def to_json(self) -> dict[str, Any]:
        """The file's content."""
        return {
            "format": STATS_FORMAT, "version": STATS_VERSION, "dialect": self.dialect,
            "database": self.database, "server_version": self.server_version,
            "exported_at": self.exported_at,
            "tables": {name: {"rows": t.rows, "table_bytes": t.table_bytes,
                              "index_bytes": t.index_bytes, "columns": t.columns,
                              "indexes": t.indexes}
                       for name, t in sorted(self.tables.items())},
        }


def export_stats(connection: Connection) -> Stats:
    """Read the sizes of every table of ``connection``'s database (nothing is scanned but SQLite)."""
    dialect = connection.dialect.name
    inspector = sa.inspect(connection)
    names = [t for t in sorted(inspector.get_table_names()) if t not in SKIPPED]
    sizes = _SIZES.get(dialect, _sqlite_sizes)(connection, names)
    tables: dict[str, TableStats] = {}
    for name in names:
        rows, table_bytes, index_bytes, index_sizes = sizes.get(name, (None, None, None, {}))
        columns = {c["name"]: _type_text(c["type"]) for c in inspector.get_columns(name)}
        indexes = {ix["name"]: {"columns": [str(c) for c in ix["column_names"]],
                                "unique": bool(ix.get("unique")),
                                "bytes": index_sizes.get(ix["name"])}
                   for ix in inspector.get_indexes(name) if ix.get("name")}
        tables[name.lower()] = TableStats(rows, table_bytes, index_bytes, columns, indexes)
    version = ".".join(str(part) for part in (connection.dialect.server_version_info or ()))
    return Stats(dialect, tables, database=_database_name(connection), server_version=version,
                 exported_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))


def export_from_url(url: str, lock_timeout_ms: int = 5000, statement_timeout_ms: int = 60_000) -> Stats:
    """:func:`export_stats` on the database ``url`` names, through the runbooks' bounded session factory."""
    from softbee.runbook.errors import ConfigError
    from softbee.runbook.project import describe_connection_error, make_engine
    from softbee.runbook.project.sessions import Timeouts, open_session
    from softbee.urls import BadDatabaseURL, parse_url

    try:
        parsed = parse_url(url)
    except BadDatabaseURL as exc:
        raise ConfigError(str(exc)) from None
    engine = make_engine(parsed)
    try:
        with open_session(engine, Timeouts(lock_timeout_ms, statement_timeout_ms)) as conn:
            stats = export_stats(conn)
            conn.rollback()
            return stats
    except sa.exc.OperationalError as exc:
        from softbee.runbook.errors import DatabaseError

        raise DatabaseError(describe_connection_error(exc, parsed)) from None
    finally:
        engine.dispose()


def write_stats(stats: Stats, path: Path) -> Path:
    """Write ``stats`` as JSON to ``path``."""
    path.write_text(json.dumps(stats.to_json(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def load_stats(path: str | Path) -> Stats:
    """Read a stats file (``stats export``'s, or one written by hand in the same shape)."""
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReviewError(f"stats file {str(file)!r} not found: write it with "
                          "`softbee-runbook stats export -o FILE` or fix --stats") from None
    except (OSError, ValueError) as exc:
        raise ReviewError(f"stats file {str(file)!r} cannot be read ({type(exc).__name__}): "
                          "write it again with `softbee-runbook stats export`") from None
    if not isinstance(data, dict) or not isinstance(data.get("tables"), dict):
        raise ReviewError(f"stats file {str(file)!r} has no \"tables\" mapping: write it with "
                          "`softbee-runbook stats export`")
    version = data.get("version", STATS_VERSION)
    if version != STATS_VERSION:
        raise ReviewError(f"stats file {str(file)!r} is format version {version!r}; this "
                          f"softbee-runbook reads version {STATS_VERSION}: export it again")
    tables: dict[str, TableStats] = {}
    for name, raw in data["tables"].items():
        if not isinstance(raw, dict):
            raise ReviewError(f"stats file {str(file)!r}: table {name!r} is not a mapping")
        tables[str(name).lower()] = TableStats(
            _int(raw.get("rows"), file, name), _int(raw.get("table_bytes", raw.get("bytes")), file, name),
            _int(raw.get("index_bytes"), file, name), dict(raw.get("columns") or {}),
            dict(raw.get("indexes") or {}))
    return Stats(str(data.get("dialect") or "postgresql"), tables,
                 database=str(data.get("database") or ""),
                 server_version=str(data.get("server_version") or ""),
                 exported_at=str(data.get("exported_at") or ""), source=str(file))


def _int(value: Any, file: Path, table: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ReviewError(f"stats file {str(file)!r}: table {table!r} has {value!r} where a "
                          "count of rows or bytes belongs")
    return int(value)


def _type_text(type_: Any) -> str:
    try:
        return str(type_)
    except Exception:  # noqa: BLE001 - a type without a compiler for this dialect
        return type(type_).__name__


def _database_name(connection: Connection) -> str:
    name = connection.engine.url.database or ""
    return Path(name).name if connection.dialect.name == "sqlite" else name


Sizes = dict[str, tuple[int | None, int | None, int | None, dict[str, int | None]]]


def _postgresql_sizes(connection: Connection, names: list[str]) -> Sizes:
    rows = connection.execute(sa.text(
        "SELECT c.relname, c.reltuples::bigint, s.n_live_tup, pg_table_size(c.oid), "
        "pg_indexes_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
        "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')")).all()
    indexes = connection.execute(sa.text(
        "SELECT t.relname, i.relname, pg_relation_size(i.oid) FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
        "JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = current_schema()")).all()
    by_table: dict[str, dict[str, int | None]] = {}
    for table, index, size in indexes:
        by_table.setdefault(table, {})[index] = int(size)
    sizes: Sizes = {}
    for name, reltuples, live, table_bytes, index_bytes in rows:
        # reltuples is -1 (PostgreSQL 14+) or 0 for a table never vacuumed or analysed
        estimate = int(reltuples) if reltuples and reltuples > 0 else int(live or 0)
        sizes[name] = (estimate, int(table_bytes), int(index_bytes), by_table.get(name, {}))
    return sizes


def _mysql_sizes(connection: Connection, names: list[str]) -> Sizes:
    rows = connection.execute(sa.text(
        "SELECT TABLE_NAME, TABLE_ROWS, DATA_LENGTH, INDEX_LENGTH FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'")).all()
    return {name: (int(r or 0), int(d or 0), int(i or 0), {}) for name, r, d, i in rows}


def _sqlite_sizes(connection: Connection, names: list[str]) -> Sizes:
    quote = connection.dialect.identifier_preparer.quote
    sizes: Sizes = {}
    for name in names:
        rows = int(connection.exec_driver_sql(f"SELECT count(*) FROM {quote(name)}").scalar_one())
        sizes[name] = (rows, _sqlite_bytes(connection, name), None, {})
    return sizes


def _sqlite_bytes(connection: Connection, name: str) -> int | None:
    try:
        found = connection.exec_driver_sql(
            "SELECT sum(pgsize) FROM dbstat WHERE name = ?", (name,)).scalar()
    except sa.exc.DBAPIError:  # SQLite built without dbstat
        connection.rollback()
        return None
    return int(found) if found is not None else None


_SIZES = {"postgresql": _postgresql_sizes, "mysql": _mysql_sizes, "mariadb": _mysql_sizes,
          "sqlite": _sqlite_sizes}
