"""The schema a revision produces, built by migrating a scratch database, and schema comparisons.

A recovery, a review or a drift check needs to know what a database *should* look like at
a revision. The models are no answer (real projects' models drift from their migrations),
so :func:`expected_schema` migrates an empty scratch database on the same server to the
revision with plain Alembic (Alembic owns its transactions, so a revision using
``autocommit_block`` runs as under ``flask db upgrade``), reflects it into a
:class:`SchemaSnapshot` and caches it per migrations tree (see :func:`cache_dir`).
:func:`compare_schemas` lists each difference between two snapshots as one line;
:func:`model_drift` is the project's own finding: its models against its migrations.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import URL, Connection

from softbee.runbook.errors import RecoveryError
from softbee.runbook.online.phases import PHASE_TABLE
from softbee.runbook.project import Project
from softbee.runbook.util.history_name import HISTORY_TABLE, is_history_table

if TYPE_CHECKING:  # pandas is imported where a DataFrame is made, when it is
    import pandas as pd

SNAPSHOT_FORMAT = 2  # bump when reflection changes: older cache entries are then never read
SKIPPED = frozenset({"alembic_version", PHASE_TABLE, HISTORY_TABLE})
DIFFERENCE_COLUMNS = ["difference", "table", "item", "expected", "found"]


@dataclass(frozen=True)
class SchemaSnapshot:
    """A database's schema as comparable text: per table, each item's description; enum types.

    Items are ``column <name>``, ``primary key``, ``index <name>``, ``unique (<columns>)``,
    ``foreign key (<columns>)`` and ``check <name>``; ``source`` says whose schema it is
    ("revision abc123", "the database", "the models").
    """

    source: str
    dialect: str
    tables: dict[str, dict[str, str]] = field(default_factory=dict)
    enums: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        """The snapshot as JSON (the cache's format)."""
        return json.dumps({"format": SNAPSHOT_FORMAT, **asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SchemaSnapshot:
        """A snapshot from :meth:`to_json`'s text."""
        data = json.loads(text)
        if data.pop("format", None) != SNAPSHOT_FORMAT:
            raise ValueError("snapshot written in another format")
        return cls(**data)


@dataclass(frozen=True)
class SchemaDifference:
    """One difference between two snapshots, as one line (``str()``)."""

    kind: str  # "missing": only in the expected schema; "extra": only in the other; "changed"
    table: str | None
    item: str
    expected: str | None
    found: str | None
    line: str

    def __str__(self) -> str:
        return self.line


# -- reflection ------------------------------------------------------------------------------


def reflect_schema(
    connection: Connection, source: str = "the database", skip: Iterable[str] = SKIPPED
) -> SchemaSnapshot:
    """The schema ``connection``'s database holds, as a :class:`SchemaSnapshot`."""
    inspector = sa.inspect(connection)
    skipped = set(skip)
    implicit = connection.dialect.name in ("mysql", "mariadb")
    names = [table for table in sorted(inspector.get_table_names())
             if table not in skipped and not is_history_table(table)]
    read = _reader(inspector, names)
    tables = {table: _table_items(read, table, implicit) for table in names}
    enums: dict[str, str] = {}
    if connection.dialect.name == "postgresql":
        for enum in inspector.get_enums():  # type: ignore[attr-defined]
            enums[enum["name"]] = ", ".join(repr(label) for label in enum["labels"])
    return SchemaSnapshot(source=source, dialect=connection.dialect.name, tables=tables, enums=enums)


def _reader(inspector: Any, names: list[str]) -> Any:
    """``read(kind, table)``: one query per kind for every table where SQLAlchemy 2 can (PostgreSQL
    reflects 80 tables in ~7 queries instead of ~500), else the per-table call (SQLAlchemy 1.4)."""
    fetched: dict[str, dict[str, Any] | None] = {}

    def read(kind: str, table: str) -> Any:
        empty: Any = {} if kind == "pk_constraint" else []
        if kind not in fetched:
            multi = getattr(inspector, f"get_multi_{kind}", None)
            try:
                fetched[kind] = (None if multi is None else
                                 {key[1]: value for key, value in multi(filter_names=names).items()})
            except NotImplementedError:
                fetched[kind] = {}
        bulk = fetched[kind]
        if bulk is not None:
            return bulk.get(table, empty)
        try:
            return getattr(inspector, f"get_{kind}")(table)
        except NotImplementedError:
            return empty

    return read


def _table_items(read: Any, table: str, implicit_fk_indexes: bool = False) -> dict[str, str]:
    """``implicit_fk_indexes``: MySQL makes an index for a foreign key that has none; it is left out."""
    items: dict[str, str] = {}
    foreign_keys = read("foreign_keys", table)
    implicit = {(fk["constrained_columns"][0], tuple(fk["constrained_columns"])) for fk in foreign_keys}
    implicit |= {(fk["name"], tuple(fk["constrained_columns"])) for fk in foreign_keys if fk.get("name")}
    for column in read("columns", table):
        text = _type_text(column["type"]) + ("" if column["nullable"] else " NOT NULL")
        if column.get("default") is not None:
            text += f" DEFAULT {column['default']}"
        items[f"column {column['name']}"] = text
    primary = (read("pk_constraint", table) or {}).get("constrained_columns") or []
    if primary:
        items["primary key"] = f"({', '.join(primary)})"
    for index in read("indexes", table):
        if index.get("duplicates_constraint"):
            continue  # the unique constraint's own index: compared as the constraint
        if implicit_fk_indexes and not index.get("unique") and (
                index["name"], tuple(index["column_names"])) in implicit:
            continue  # made by the server for a foreign key, not by any DDL
        columns = [c if c is not None else e for c, e in
                   zip(index["column_names"], index.get("expressions") or index["column_names"])]
        items[f"index {index['name']}"] = (f"({', '.join(str(c) for c in columns)})"
                                           + (" UNIQUE" if index.get("unique") else ""))
    for unique in read("unique_constraints", table):
        items[f"unique ({', '.join(unique['column_names'])})"] = unique.get("name") or ""
    for fk in foreign_keys:
        target = f"{fk['referred_table']} ({', '.join(fk['referred_columns'])})"
        options = " ".join(f"{k.upper()} {v}" for k, v in sorted((fk.get("options") or {}).items()))
        items[f"foreign key ({', '.join(fk['constrained_columns'])})"] = (
            f"REFERENCES {target} {options}".strip())
    for check in read("check_constraints", table):
        items[f"check {check.get('name') or check['sqltext']}"] = str(check["sqltext"])
    return items


def _type_text(type_: Any) -> str:
    try:
        return str(type_)
    except Exception:  # noqa: BLE001 - a type without a compiler for this dialect
        return type(type_).__name__


# -- comparison ------------------------------------------------------------------------------


def compare_schemas(live: SchemaSnapshot, expected: SchemaSnapshot) -> list[SchemaDifference]:
    """Every difference between ``live`` and ``expected``, one line each; [] when they are the same."""
    out: list[SchemaDifference] = []

    def add(kind: str, table: str | None, item: str, want: str | None, got: str | None) -> None:
        what = _name(table, item)
        if kind == "missing":
            line = f"{what} missing from {live.source}"
        elif kind == "extra":
            line = f"{what} not in {expected.source}"
        else:
            line = f"{what}: {want} in {expected.source}, {got} in {live.source}"
        out.append(SchemaDifference(kind, table, item, want, got, line))

    for name in sorted(set(live.enums) | set(expected.enums)):
        _compare_item(add, None, f"enum type {name}", expected.enums.get(name), live.enums.get(name))
    for table in sorted(set(live.tables) | set(expected.tables)):
        if table not in live.tables:
            add("missing", table, "table", None, None)
        elif table not in expected.tables:
            add("extra", table, "table", None, None)
        else:
            want, got = expected.tables[table], live.tables[table]
            for item in sorted(set(want) | set(got)):
                _compare_item(add, table, item, want.get(item), got.get(item))
    return out


def _compare_item(add: Any, table: str | None, item: str, want: str | None, got: str | None) -> None:
    if got is None and want is not None:
        add("missing", table, item, want, None)
    elif want is None and got is not None:
        add("extra", table, item, None, got)
    elif want != got:
        add("changed", table, item, want, got)


def _name(table: str | None, item: str) -> str:
    if table is None:
        return item
    if item == "table":
        return f"table {table}"
    if item.startswith("column "):
        return f"column {table}.{item[len('column '):]}"
    return f"{item} on {table}"


def differences_frame(differences: list[SchemaDifference]) -> pd.DataFrame:
    """The differences as a table: the line, the table, the item, expected and found."""
    import pandas as pd

    return pd.DataFrame(
        [{"difference": d.line, "table": d.table, "item": d.item, "expected": d.expected,
          "found": d.found} for d in differences],
        columns=DIFFERENCE_COLUMNS,
    )


# -- the schema a revision produces ----------------------------------------------------------


def cache_dir() -> Path:
    """Where snapshots are cached: ``$SOFTBEE_CACHE_DIR``, else ``$XDG_CACHE_HOME/softbee/schemas``."""
    given = os.environ.get("SOFTBEE_CACHE_DIR")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "softbee" / "schemas"


def migrations_hash(project: Project) -> str:
    """sha256 of every file (path and contents) in the project's version locations."""
    script = project.script()
    locations = getattr(script, "_version_locations", None) or [script.versions]
    digest = hashlib.sha256(f"format {SNAPSHOT_FORMAT}\n".encode())
    for location in sorted(str(place) for place in locations):
        root = Path(location)
        for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix == ".py"
                           and "__pycache__" not in p.parts):
            digest.update(f"{path.relative_to(root)}\n".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def expected_schema(project: Project, revision: str | None) -> SchemaSnapshot:
    """The schema a fresh database has at ``revision`` (None or "base": empty), cached per migrations tree."""
    if revision in (None, "base"):
        return SchemaSnapshot(source="base", dialect=project.dialect)
    if revision in ("head", "heads"):
        from softbee.runbook.review.state import single_head

        revision = single_head(project)
    source = f"revision {revision}"
    bind = f"{project.bind}-" if project.bind else ""  # each bind's revisions make its own tables
    path = cache_dir() / f"{project.dialect}-{bind}{revision}-{migrations_hash(project)[:24]}.json"
    cached = _read_cache(path)
    if cached is not None:
        return replace(cached, source=source)
    with scratch_database(project) as scratch, scratch.connect() as conn:
        with scratch.bound(conn) as config:
            # The probe left the version-table read open: Alembic must begin (and own) its
            # transactions, or a revision's autocommit_block fails its assertion.
            conn.commit()
            command.upgrade(config, revision)
        conn.commit()
        snapshot = reflect_schema(conn, source=source)
        conn.rollback()
    _write_cache(path, snapshot)
    return snapshot


def _read_cache(path: Path) -> SchemaSnapshot | None:
    try:
        return SchemaSnapshot.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return None


def _write_cache(path: Path, snapshot: SchemaSnapshot) -> None:
    """Write atomically; a cache that cannot be written only costs the next call a scratch run."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
        temporary.write_text(snapshot.to_json(), encoding="utf-8")
        os.replace(temporary, path)
    except OSError:
        pass


@contextmanager
def scratch_database(project: Project) -> Iterator[Project]:
    """The project on an empty database of the same dialect on the same server, dropped afterwards."""
    if project.dialect == "sqlite":
        with tempfile.TemporaryDirectory(prefix="softbee-scratch-") as folder:
            with _on(project, project.url.set(database=str(Path(folder) / "scratch.sqlite3"))) as scratch:
                yield scratch
        return
    name = f"softbee_scratch_{uuid.uuid4().hex[:10]}"
    if project.dialect == "postgresql":
        admin_url, create, drop = (project.url.set(database="postgres"), f'CREATE DATABASE "{name}"',
                                   f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        grant = "grant CREATEDB to the migration user"
    elif project.dialect in ("mysql", "mariadb"):
        admin_url, create, drop = (project.url, f"CREATE DATABASE `{name}`",
                                   f"DROP DATABASE IF EXISTS `{name}`")
        grant = "grant CREATE to the migration user"
    else:
        raise RecoveryError(f"cannot build a scratch {project.dialect} database to compare against")
    admin = project.on_url(admin_url)  # bounded like every session of the run
    try:
        try:
            with admin.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.exec_driver_sql(create)
        except Exception as exc:
            raise RecoveryError(
                f"cannot create a scratch database to build the expected schema "
                f"({type(exc).__name__}): {grant}") from None
        try:
            with _on(project, project.url.set(database=name)) as scratch:
                yield scratch
        finally:
            with admin.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.exec_driver_sql(drop)
    finally:
        admin.engine.dispose()


@contextmanager
def _on(project: Project, url: URL) -> Iterator[Project]:
    scratch = project.on_url(url)  # the run's timeouts on the scratch database too
    scratch._scripts = None  # noqa: SLF001 - its own script cache
    try:
        yield scratch
    finally:
        scratch.engine.dispose()


# -- the models against the migrations -------------------------------------------------------


def models_schema(project: Project, metadata: Any) -> SchemaSnapshot:
    """The schema ``metadata`` (a MetaData or a list of them) creates, reflected from a scratch database."""
    collections = metadata if isinstance(metadata, (list, tuple)) else [metadata]
    ddl = hashlib.sha256(f"format {SNAPSHOT_FORMAT}\n".encode())
    dialect = project.engine.dialect
    for collection in collections:  # compiling first: a model the dialect cannot create raises here
        for table in collection.sorted_tables:
            ddl.update(str(sa.schema.CreateTable(table).compile(dialect=dialect)).encode())
            for index in sorted(table.indexes, key=lambda i: str(i.name)):
                ddl.update(str(sa.schema.CreateIndex(index).compile(dialect=dialect)).encode())
    path = cache_dir() / f"{project.dialect}-models-{ddl.hexdigest()[:24]}.json"
    cached = _read_cache(path)
    if cached is not None:
        return cached
    with scratch_database(project) as scratch, scratch.connect() as conn:
        for collection in collections:
            collection.create_all(conn)
        conn.commit()
        snapshot = reflect_schema(conn, source="the models")
        conn.rollback()
    _write_cache(path, snapshot)
    return snapshot


def model_drift(project: Project, metadata: Any) -> list[SchemaDifference]:
    """How the models (``metadata``) differ from what the migrations produce at head."""
    return compare_schemas(models_schema(project, metadata), expected_schema(project, "head"))


def drift_message(differences: list[SchemaDifference], limit: int = 5) -> str:
    """One sentence: the models match the migrations, or differ in N places (the first few named)."""
    if not differences:
        return "the models match the migrations"
    shown = "; ".join(d.line for d in differences[:limit])
    more = f"; and {len(differences) - limit} more" if len(differences) > limit else ""
    return (f"the models differ from the migrations in {len(differences)} place(s): {shown}{more} "
            "(the project's own finding: `flask db check` is not clean; it does not affect "
            "this run)")
