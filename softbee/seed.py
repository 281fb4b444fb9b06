"""Sample data for whatever schema the database has at its current revision.

The schema is reflected, never taken from the models: seeding a database at an
old revision fills only the tables and columns that exist there. Values come
from each column's type and name, and are deterministic for a given
``(seed, rows, schema, existing rows)``.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Engine

from softbee.runbook.util.history_name import is_history_table

__all__ = ["BATCH_SIZE", "TABLE_SHARES", "seed_database", "table_sizes"]

# Rows per executemany: large enough to be fast, small enough to bound memory.
BATCH_SIZE = 5_000

# Rows per table as a fraction of ``rows`` (``inspections``, the largest, gets all of them).
TABLE_SHARES: dict[str, float] = {
    "inspections": 1.0,
    "treatments": 1 / 4,
    "hives": 1 / 5,
    "apiaries": 1 / 20,
    "users": 1 / 50,
}
UNKNOWN_TABLE_SHARE = 1 / 10

SKIPPED_TABLES = frozenset({"alembic_version"})  # and the runbooks' history: is_history_table

# Share of nullable (non-unique) values left NULL.
NULL_SHARE = 0.15

_EPOCH = datetime(2023, 1, 1, 8, 0, 0)
_SPAN_MINUTES = 3 * 365 * 24 * 60

# fmt: off
_FIRST_NAMES = (
    "Ana", "Bruno", "Carla", "Diego", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas",
    "Karin", "Luis", "Marta", "Nils", "Olga", "Pablo", "Rosa", "Sven", "Tereza", "Yusuf",
)
_LAST_NAMES = (
    "Abeille", "Bienen", "Colmena", "Drone", "Enjambre", "Favo", "Gelee", "Hornet", "Imker",
    "Jalea", "Kaste", "Langstroth", "Miel", "Nectar", "Ouvriere", "Propolis",
)
_WORDS = (
    "brood", "comb", "frame", "queen", "drone", "nectar", "pollen", "capped", "supers",
    "swarm", "cell", "calm", "strong", "weak", "mites", "feeding", "syrup", "honey",
)
# fmt: on
# Column name -> values to choose from (applies when the column is a string).
_CHOICES: dict[str, tuple[str, ...]] = {
    "status": ("active", "active", "active", "inactive", "dead"),
    "health_status": ("healthy", "healthy", "weak", "queenless", "diseased", "unknown"),
    "hive_type": ("langstroth", "dadant", "top_bar", "warre", "layens"),
    "temperament": ("calm", "calm", "nervous", "defensive", "aggressive"),
    "product": ("Oxalic acid", "Formic acid", "Apivar", "Apiguard", "Thymovar", "MAQS"),
    "target": ("varroa", "varroa", "varroa", "nosema", "american_foulbrood", "chalkbrood"),
    "dose": ("1 strip", "2 strips", "5 ml", "50 ml trickle", "2 g vapour", "1 pad"),
    "location": ("Hillside orchard", "River meadow", "Forest edge", "Rooftop", "Lavender field"),
}


def table_sizes(table_names: Sequence[str], rows: int) -> dict[str, int]:
    """Return how many rows to add to each table when ``rows`` is the largest table's size."""
    return {
        name: max(1, round(rows * TABLE_SHARES.get(name, UNKNOWN_TABLE_SHARE)))
        for name in table_names
    }


def seed_database(
    engine: Engine,
    rows: int = 1000,
    seed: int = 42,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Add sample rows to every table at the current revision; return rows added per table.

    ``progress(table, rows_added)`` is called as each table is done.
    """
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    added: dict[str, int] = {}
    with engine.begin() as conn:
        metadata = _reflect(conn)
        tables = [t for t in metadata.sorted_tables
                  if t.name not in SKIPPED_TABLES and not is_history_table(t.name)]
        sizes = table_sizes([t.name for t in tables], rows)
        for table in tables:
            rng = random.Random(f"softbee-seed:{seed}:{table.name}")
            added[table.name] = _seed_table(conn, table, sizes[table.name], rng)
            if progress is not None:
                progress(table.name, added[table.name])
    return added


def _reflect(conn: Connection) -> sa.MetaData:
    """The schema as it is now, with MySQL's storage types mapped back to what they store."""
    metadata = sa.MetaData()
    metadata.reflect(conn)
    if conn.dialect.name == "mysql":
        _restore_mysql_types(conn, metadata)
    return metadata


# MariaDB's JSON columns: LONGTEXT with a column-level CHECK (json_valid(`name`)).
_JSON_VALID = re.compile(r"json_valid\(`(?P<column>[^`]+)`\)", re.IGNORECASE)


def _restore_mysql_types(conn: Connection, metadata: sa.MetaData) -> None:
    """Give boolean and JSON columns back the types MySQL/MariaDB reflect them without.

    MySQL and MariaDB store BOOLEAN as TINYINT(1) and reflect it so: generated as an
    integer it is out of range (error 1264), and ``_make_coherent`` needs True/False.
    MariaDB stores JSON as LONGTEXT checked by ``json_valid()``: generated as text it breaks
    the check. (A TINYINT(1) meant as a tiny number gets 0 and 1, which it can hold.)
    """
    json_columns: set[tuple[str, str]] = set()
    if getattr(conn.dialect, "is_mariadb", False):
        checks = conn.execute(
            sa.text(
                "SELECT TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS"
                " WHERE CONSTRAINT_SCHEMA = DATABASE() AND LEVEL = 'Column'"
            )
        )
        for table_name, clause in checks:
            found = _JSON_VALID.fullmatch(str(clause).strip())
            if found:
                json_columns.add((str(table_name), found.group("column")))
    for table in metadata.tables.values():
        for column in table.columns:
            if isinstance(column.type, mysql.TINYINT) and column.type.display_width == 1:
                column.type = sa.Boolean()
            elif (table.name, column.name) in json_columns:
                column.type = sa.JSON()


@dataclass
class _TablePlan:
    """What is known about one table before its rows are generated."""

    table: sa.Table
    # (column, value generator, may be NULL, is part of a unique key) for non-FK columns.
    makers: list[tuple[sa.Column[Any], Callable[..., Any], bool, bool]]
    # (local columns, parent key rows to pick from, nullable) per foreign key.
    fk_choices: list[tuple[list[str], list[tuple[Any, ...]], bool]]
    # (unique key columns, key values already taken) per unique constraint or index.
    unique_sets: list[tuple[tuple[str, ...], set[tuple[Any, ...]]]]
    # Running index of the last existing row: new rows count up from here.
    first_index: int
    unique_columns: set[str]


def _seed_table(conn: Connection, table: sa.Table, count: int, rng: random.Random) -> int:
    """Insert ``count`` generated rows into ``table`` in batches; return how many went in."""
    plan = _plan(conn, table)
    count = _cap_for_fk_only_uniques(plan, count)
    if count == 0:
        return 0
    insert = table.insert()
    # One multi-row INSERT per page where the driver batches (psycopg2), kept under
    # PostgreSQL's 65535 bind parameters per statement.
    options = {"insertmanyvalues_page_size": max(1, 30_000 // max(1, len(table.columns)))}
    batch: list[dict[str, Any]] = []
    inserted = 0
    for row in _rows(plan, count, rng):
        batch.append(row)
        if len(batch) >= BATCH_SIZE:
            conn.execute(insert, batch, execution_options=options)
            inserted += len(batch)
            batch = []
    if batch:
        conn.execute(insert, batch, execution_options=options)
        inserted += len(batch)
    return inserted


def _plan(conn: Connection, table: sa.Table) -> _TablePlan:
    """Reflect what generating rows for ``table`` needs: parents, uniques, the index offset."""
    autoincrement_pk = _autoincrement_pk(table)
    generated = [c for c in table.columns if c is not autoincrement_pk and not c.computed]

    fk_columns: set[str] = set()
    fk_choices: list[tuple[list[str], list[tuple[Any, ...]], bool]] = []
    for fk in sorted(table.foreign_key_constraints, key=lambda f: tuple(f.column_keys)):
        local = [c.name for c in fk.columns]
        if not set(local) <= {c.name for c in generated}:
            continue
        remote = [e.column for e in fk.elements]
        parents = [
            tuple(r)
            for r in conn.execute(sa.select(*remote).order_by(*remote)).all()
            if None not in tuple(r)
        ]
        nullable = all(c.nullable for c in fk.columns)
        fk_choices.append((local, parents, nullable))
        fk_columns.update(local)

    unique_keys: list[tuple[str, ...]] = []
    for constraint in table.constraints:
        if isinstance(constraint, sa.UniqueConstraint):
            unique_keys.append(tuple(c.name for c in constraint.columns))
    for index in table.indexes:
        if index.unique and all(isinstance(e, sa.Column) for e in index.expressions):
            unique_keys.append(tuple(c.name for c in index.columns))
    if autoincrement_pk is None and len(table.primary_key.columns) > 0:
        unique_keys.append(tuple(c.name for c in table.primary_key.columns))
    unique_keys = sorted(set(unique_keys))

    existing = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
    first_index = existing
    if autoincrement_pk is not None and existing:
        max_id = conn.execute(sa.select(sa.func.max(autoincrement_pk))).scalar_one()
        first_index = max(existing, int(max_id or 0))
    unique_sets: list[tuple[tuple[str, ...], set[tuple[Any, ...]]]] = []
    for key in unique_keys:
        seen: set[tuple[Any, ...]] = set()
        if existing:
            cols = [table.c[name] for name in key]
            seen = {tuple(r) for r in conn.execute(sa.select(*cols)).all()}
        unique_sets.append((key, seen))

    unique_columns = {name for key, _ in unique_sets for name in key} - fk_columns
    makers = [
        (c, _maker(c), bool(c.nullable) and c.name not in unique_columns, c.name in unique_columns)
        for c in generated
        if c.name not in fk_columns
    ]
    return _TablePlan(table, makers, fk_choices, unique_sets, first_index, unique_columns)


def _autoincrement_pk(table: sa.Table) -> sa.Column[Any] | None:
    """The single integer primary key column the database numbers itself, if any."""
    pk = list(table.primary_key.columns)
    if len(pk) != 1 or not isinstance(pk[0].type, sa.Integer):
        return None
    return pk[0] if pk[0].autoincrement in (True, "auto") else None


def _cap_for_fk_only_uniques(plan: _TablePlan, count: int) -> int:
    """Limit ``count`` when a unique key is made only of foreign keys (one row per parent)."""
    fk_columns = {name for local, _, _ in plan.fk_choices for name in local}
    for key, seen in plan.unique_sets:
        if key and set(key) <= fk_columns:
            parents = [p for local, p, _ in plan.fk_choices if set(local) & set(key)]
            combos = 1
            for p in parents:
                combos *= len(p)
            count = min(count, max(0, combos - len(seen)))
    return count


def _rows(plan: _TablePlan, count: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    """Yield ``count`` rows for ``plan.table``; unique keys are checked against what exists."""
    index = plan.first_index
    fk_only_unique = {
        key for key, _ in plan.unique_sets if key and not (set(key) & plan.unique_columns)
    }
    produced = 0
    attempts = 0
    while produced < count:
        index += 1
        attempts += 1
        if attempts > count * 20 + 1000:
            raise RuntimeError(
                f"cannot generate {count} rows for {plan.table.name!r} without "
                "breaking a unique constraint"
            )
        row = _row(plan, index, rng, sequential_fk=bool(fk_only_unique))
        keys = [(tuple(row.get(n) for n in key), seen) for key, seen in plan.unique_sets]
        if any(value in seen for value, seen in keys if None not in value):
            continue
        for value, seen in keys:
            seen.add(value)
        produced += 1
        yield row


def _row(
    plan: _TablePlan, index: int, rng: random.Random, *, sequential_fk: bool
) -> dict[str, Any]:
    """One row: foreign keys from existing parents, other columns from type and name."""
    row: dict[str, Any] = {}
    for local, parents, nullable in plan.fk_choices:
        if not parents or (nullable and rng.random() < NULL_SHARE):
            row.update(dict.fromkeys(local, None))
            continue
        parent = parents[index % len(parents)] if sequential_fk else rng.choice(parents)
        row.update(zip(local, parent, strict=True))
    for column, make, may_be_null, unique in plan.makers:
        if column.name in row:
            continue
        if may_be_null and rng.random() < NULL_SHARE:
            row[column.name] = None
            continue
        row[column.name] = make(column, column.name.lower(), index, rng, unique)
    _make_coherent(plan.table, row, rng)
    return row


def _make_coherent(table: sa.Table, row: dict[str, Any], rng: random.Random) -> None:
    """Fix values that other columns of the same row constrain (names, time order)."""
    if row.get("full_name") is not None and {"first_name", "last_name"} <= row.keys():
        full = f"{row['first_name']} {row['last_name']}"
        row["full_name"] = _fit(full, table.c.full_name.type)
    for earlier, later in (("created_at", "updated_at"), ("started_at", "ended_at")):
        if isinstance(row.get(earlier), datetime) and isinstance(row.get(later), datetime):
            row[later] = row[earlier] + timedelta(minutes=rng.randrange(60 * 24 * 60))
    if row.get("email_verified") is False and "email_verified_at" in row:
        row["email_verified_at"] = None


def _maker(column: sa.Column[Any]) -> Callable[..., Any]:
    """The generator for ``column``'s type (a NULL, or a name-based string, when unknown)."""
    for kind, make in _GENERATORS:
        if isinstance(column.type, kind):
            return make
    return _unknown


def _unknown(
    column: sa.Column[Any], name: str, index: int, rng: random.Random, unique: bool
) -> Any:
    """No value for a NULLable column of unknown type, else a name-based string."""
    return None if column.nullable else _fit(f"{name}-{index}", column.type)


def _string(column: sa.Column[Any], name: str, index: int, rng: random.Random, unique: bool) -> Any:
    """A string that reads like the column (email, names, choices, notes), within length."""
    type_ = column.type
    if isinstance(type_, sa.Enum) and type_.enums:
        return rng.choice(type_.enums)
    if "email" in name and "token" not in name:
        return _fit_unique(f"beekeeper{index}", "@example.org", type_)
    if unique:
        return _fit_unique(f"{name}-", str(index), type_)
    if name in _CHOICES:
        return _fit(rng.choice(_CHOICES[name]), type_)
    if name == "first_name":
        return _fit(rng.choice(_FIRST_NAMES), type_)
    if name == "last_name":
        return _fit(rng.choice(_LAST_NAMES), type_)
    if name == "full_name":
        return _fit(f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}", type_)
    if name == "username":
        return _fit(f"beekeeper{index}", type_)
    if "password" in name:
        salt, digest = rng.getrandbits(64), rng.getrandbits(128)
        return _fit(f"pbkdf2:sha256:600000${salt:016x}${digest:032x}", type_)
    if "token" in name:
        return _fit(f"{rng.getrandbits(256):064x}", type_)
    if name == "name":
        return _fit(f"{rng.choice(_LAST_NAMES)} apiary {index}", type_)
    if name == "notes" or isinstance(type_, sa.Text) or _length(type_) is None:
        return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 12))).capitalize() + "."
    return _fit(f"{name}-{index}", type_)


def _integer(
    column: sa.Column[Any], name: str, index: int, rng: random.Random, unique: bool
) -> int:
    """An integer in the column's plausible range; the running index when unique."""
    if unique:
        return index
    if "year" in name:
        return rng.randint(2018, 2025)
    if "frames" in name:
        return rng.randint(0, 10)
    if "varroa" in name or "mites" in name:
        return rng.choice((0, 0, 1, 1, 2, 3, 4, 6, 9, 14))
    if isinstance(column.type, sa.SmallInteger | mysql.TINYINT):
        return rng.randint(0, 100)
    return rng.randint(0, 1000)


def _float(column: sa.Column[Any], name: str, index: int, rng: random.Random, unique: bool) -> Any:
    """A float (or Decimal within precision and scale); coordinates stay on the globe."""
    if name.startswith("lat"):
        value = rng.uniform(-60.0, 70.0)
    elif name.startswith(("lon", "lng")):
        value = rng.uniform(-180.0, 180.0)
    else:
        value = index + rng.random() if unique else rng.uniform(0.0, 100.0)
    numeric = column.type
    if isinstance(numeric, sa.Float) or not isinstance(numeric, sa.Numeric):
        return round(value, 6)
    scale = numeric.scale if numeric.scale is not None else 2
    if numeric.precision is not None:
        limit = 10 ** (numeric.precision - scale) - 1
        value = min(abs(value), limit) if not unique else index % (limit + 1)
    return Decimal(str(round(value, scale)))


def _boolean(
    column: sa.Column[Any], name: str, index: int, rng: random.Random, unique: bool
) -> bool:
    """True or False, evenly."""
    return rng.random() < 0.5


def _datetime(
    column: sa.Column[Any], name: str, index: int, rng: random.Random, unique: bool
) -> Any:
    """A minute within three years from 2023-01-01 (aware UTC if the column has a zone)."""
    value = _EPOCH + timedelta(minutes=index if unique else rng.randrange(_SPAN_MINUTES))
    if getattr(column.type, "timezone", False):
        return value.replace(tzinfo=UTC)
    return value


def _date(column: sa.Column[Any], name: str, index: int, rng: random.Random, unique: bool) -> date:
    """A day within three years from 2023-01-01."""
    return _EPOCH.date() + timedelta(days=index if unique else rng.randrange(3 * 365))


def _time(column: sa.Column[Any], name: str, index: int, rng: random.Random, unique: bool) -> time:
    """A time of day to the minute."""
    return time(rng.randrange(24), rng.randrange(60))


def _interval(
    column: sa.Column[Any], name: str, index: int, rng: random.Random, unique: bool
) -> timedelta:
    """One to thirty days."""
    return timedelta(days=rng.randint(1, 30))


def _uuid(column: sa.Column[Any], name: str, index: int, rng: random.Random, unique: bool) -> Any:
    """A random (seeded) version-4 UUID."""
    value = uuid.UUID(int=rng.getrandbits(128), version=4)
    return value if getattr(column.type, "as_uuid", True) else str(value)


def _json(column: sa.Column[Any], name: str, index: int, rng: random.Random, unique: bool) -> Any:
    """A small JSON object."""
    return {"index": index, "note": rng.choice(_WORDS)}


def _binary(
    column: sa.Column[Any], name: str, index: int, rng: random.Random, unique: bool
) -> bytes:
    """Up to 16 bytes; the running index when unique."""
    size = min(_length(column.type) or 16, 16)
    return index.to_bytes(8, "big")[-size:] if unique else rng.randbytes(size)


# Checked in order: Enum before String, Boolean/Integer before Numeric.
_GENERATORS: list[tuple[type[Any], Callable[..., Any]]] = [
    (sa.Enum, _string),
    (sa.Boolean, _boolean),
    (sa.Integer, _integer),
    (sa.Numeric, _float),
    (sa.String, _string),
    (sa.DateTime, _datetime),
    (sa.Date, _date),
    (sa.Time, _time),
    (sa.Interval, _interval),
    (sa.Uuid, _uuid),
    (sa.JSON, _json),
    (sa.LargeBinary, _binary),
]


def _length(type_: sa.types.TypeEngine[Any]) -> int | None:
    """The declared maximum length of a string or binary type, if any."""
    return getattr(type_, "length", None)


def _fit(text: str, type_: sa.types.TypeEngine[Any]) -> str:
    """Cut ``text`` to the column's length."""
    length = _length(type_)
    return text if length is None else text[:length]


def _fit_unique(head: str, tail: str, type_: sa.types.TypeEngine[Any]) -> str:
    """``head + tail`` cut to the column's length from ``head``, so the unique tail survives."""
    length = _length(type_)
    if length is None or len(head) + len(tail) <= length:
        return head + tail
    return (head[: max(0, length - len(tail))] + tail)[-length:]
