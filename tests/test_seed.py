"""softbee.seed: deterministic sample data for the schema at the database's current revision."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine, make_url

from softbee import create_app
from softbee.seed import seed_database

INSPECTIONS_REVISION = "4d3f8b0e5a04"  # before hive health, full_name, varroa, treatments
USERS_REVISION = "1a0c5e7b2d01"

SIZES_FOR_200 = {"users": 4, "apiaries": 10, "hives": 40, "inspections": 200, "treatments": 50}


@contextmanager
def migrated_engine(url: str, revision: str = "head") -> Iterator[Engine]:
    """An engine on ``url`` after ``flask db upgrade <revision>``."""
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=url)
    with app.app_context():
        command.upgrade(app.extensions["migrate"].migrate.get_config(), revision)
        app.extensions["sqlalchemy"].engine.dispose()
    engine = sa.create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def counts(engine: Engine) -> dict[str, int]:
    """Rows per table (alembic_version left out)."""
    names = [n for n in sa.inspect(engine).get_table_names() if n != "alembic_version"]
    with engine.connect() as conn:
        return {
            n: conn.execute(sa.select(sa.func.count()).select_from(sa.table(n))).scalar_one()
            for n in names
        }


def dump(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, ordered by primary key."""
    metadata = sa.MetaData()
    metadata.reflect(engine)
    with engine.connect() as conn:
        return {
            t.name: [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key.columns))]
            for t in metadata.sorted_tables
        }


def orphans(engine: Engine) -> dict[str, int]:
    """Per foreign key, child rows whose non-NULL key matches no parent row."""
    metadata = sa.MetaData()
    metadata.reflect(engine)
    found: dict[str, int] = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for fk in table.foreign_key_constraints:
                parent = fk.referred_table.alias("parent")
                on = sa.and_(*(parent.c[e.column.name] == e.parent for e in fk.elements))
                query = (
                    sa.select(sa.func.count())
                    .select_from(table.outerjoin(parent, on))
                    .where(sa.and_(*(c.isnot(None) for c in fk.columns)))
                    .where(sa.and_(*(parent.c[e.column.name].is_(None) for e in fk.elements)))
                )
                found[f"{table.name}.{fk.name}"] = conn.execute(query).scalar_one()
    return found


@pytest.fixture
def second_database_url(
    any_database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> str:
    """Another fresh, empty database of the same kind as ``any_database_url``."""
    backend = make_url(any_database_url).get_backend_name()
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'second.sqlite3'}"
    fixture = {"postgresql": "postgres_url", "mysql": "mysql_url"}[backend]
    return str(request.getfixturevalue(fixture))


def test_same_seed_and_rows_fill_two_fresh_databases_identically(
    any_database_url: str, second_database_url: str
) -> None:
    """Seeding is deterministic: same (seed, rows, schema) gives the same rows."""
    with migrated_engine(any_database_url) as first, migrated_engine(second_database_url) as second:
        assert seed_database(first, rows=200, seed=7) == seed_database(second, rows=200, seed=7)
        first_rows, second_rows = dump(first), dump(second)
    assert first_rows == second_rows
    assert len(first_rows["inspections"]) == 200


def test_another_seed_gives_other_rows(tmp_path: Path) -> None:
    """The seed matters: a different one changes the generated values."""
    urls = [f"sqlite:///{tmp_path / name}" for name in ("a.sqlite3", "b.sqlite3")]
    with (
        migrated_engine(urls[0], USERS_REVISION) as first,
        migrated_engine(urls[1], USERS_REVISION) as second,
    ):
        assert seed_database(first, rows=500, seed=1) == seed_database(second, rows=500, seed=2)
        assert dump(first)["users"] != dump(second)["users"]


def test_returned_counts_match_the_database_and_the_table_shares(any_database_url: str) -> None:
    """rows=200 sizes every table from the largest (inspections), and says what it added."""
    with migrated_engine(any_database_url) as engine:
        added = seed_database(engine, rows=200)
        assert added == SIZES_FOR_200
        assert counts(engine) == SIZES_FOR_200


def test_seeding_an_intermediate_revision_fills_only_what_exists_then(
    any_database_url: str,
) -> None:
    """At the inspections revision: no treatments, and only that revision's columns."""
    with migrated_engine(any_database_url, INSPECTIONS_REVISION) as engine:
        added = seed_database(engine, rows=200)
        assert added == {k: v for k, v in SIZES_FOR_200.items() if k != "treatments"}
        assert counts(engine) == added
        columns = {c["name"] for c in sa.inspect(engine).get_columns("users")}
        assert "full_name" not in columns and "email_verified" in columns
        with engine.connect() as conn:
            verified = set(conn.execute(sa.text("SELECT email_verified FROM users")).scalars())
        assert verified and verified <= {True, False}  # 0/1 on SQLite compare equal


def test_seeding_the_first_revision_fills_users_only(sqlite_url: str) -> None:
    """With only the users table, only users are added (at least one)."""
    with migrated_engine(sqlite_url, USERS_REVISION) as engine:
        assert seed_database(engine, rows=10) == {"users": 1}
        assert counts(engine) == {"users": 1}


def test_seeding_twice_appends_without_breaking_unique_constraints(any_database_url: str) -> None:
    """A second run (same seed) doubles every table; emails and hive numbers stay unique."""
    with migrated_engine(any_database_url) as engine:
        seed_database(engine, rows=200)
        seed_database(engine, rows=200)
        assert counts(engine) == {k: 2 * v for k, v in SIZES_FOR_200.items()}
        with engine.connect() as conn:
            emails = conn.execute(sa.text("SELECT COUNT(DISTINCT email) FROM users")).scalar_one()
            hive_keys = conn.execute(
                sa.text(
                    "SELECT COUNT(*) FROM (SELECT DISTINCT apiary_id, hive_number FROM hives)"
                    " distinct_keys"  # not `keys`: a reserved word in MySQL
                )
            ).scalar_one()
        assert emails == 2 * SIZES_FOR_200["users"]
        assert hive_keys == 2 * SIZES_FOR_200["hives"]


def test_seeding_skips_unique_values_already_taken_by_other_rows(any_database_url: str) -> None:
    """Rows not made by the seeder (an email, a hive number) are stepped around, not hit."""
    with migrated_engine(any_database_url) as engine:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO users (email, username, password_hash, first_name, last_name,"
                    " full_name) VALUES ('beekeeper2@example.org', 'taken', 'x', 'Ta', 'Ken',"
                    " 'Ta Ken')"
                )
            )
        added = seed_database(engine, rows=200)
        assert added["users"] == SIZES_FOR_200["users"]
        with engine.connect() as conn:
            emails = conn.execute(sa.text("SELECT email FROM users")).scalars().all()
        assert len(emails) == len(set(emails)) == SIZES_FOR_200["users"] + 1


def test_every_foreign_key_points_at_an_existing_row(any_database_url: str) -> None:
    """No orphans, and nullable keys are sometimes NULL, sometimes set."""
    with migrated_engine(any_database_url) as engine:
        seed_database(engine, rows=200)
        found = orphans(engine)
        assert found and set(found.values()) == {0}
        with engine.connect() as conn:
            inspectors = conn.execute(sa.text("SELECT inspector_id FROM inspections")).scalars()
            kinds = {value is None for value in inspectors}
        assert kinds == {True, False}


def test_full_name_agrees_with_first_and_last_name(sqlite_url: str) -> None:
    """Generated users are coherent: full_name is first_name + ' ' + last_name."""
    with migrated_engine(sqlite_url) as engine:
        seed_database(engine, rows=200)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT first_name, last_name, full_name FROM users")).all()
    assert rows and all(full == f"{first} {last}" for first, last, full in rows)


def test_twenty_thousand_rows_on_sqlite(sqlite_url: str) -> None:
    """A realistic size: 20 000 inspections and the tables that go with them."""
    with migrated_engine(sqlite_url) as engine:
        added = seed_database(engine, rows=20_000)
        expected = {
            "users": 400,
            "apiaries": 1000,
            "hives": 4000,
            "inspections": 20_000,
            "treatments": 5000,
        }
        assert added == expected
        assert counts(engine) == expected
        assert set(orphans(engine).values()) == {0}


def test_rows_below_one_is_refused(sqlite_url: str) -> None:
    """rows=0 is a mistake, not an empty seed: refused before the database is touched."""
    engine = sa.create_engine(sqlite_url)
    try:
        with pytest.raises(ValueError, match="rows"):
            seed_database(engine, rows=0)
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_tables_outside_the_app_are_filled_from_their_column_types(any_database_url: str) -> None:
    """Any schema works: types, lengths, uniques, a composite key, an FK-only unique key."""
    metadata = sa.MetaData()
    owners = sa.Table(
        "owners",
        metadata,
        sa.Column("code", sa.String(8), primary_key=True),
        sa.Column("region", sa.String(2), primary_key=True),
        sa.Column("nickname", sa.String(12), unique=True, nullable=False),
        sa.Column("price", sa.Numeric(6, 2), nullable=False),
        sa.Column("kind", sa.Enum("a", "b", name="owner_kind"), nullable=False),
        sa.Column("born", sa.Date(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column("token", sa.Uuid(), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=True),
    )
    sa.Table(
        "profiles",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("owner_code", sa.String(8), nullable=False),
        sa.Column("owner_region", sa.String(2), nullable=False),
        sa.ForeignKeyConstraint(["owner_code", "owner_region"], [owners.c.code, owners.c.region]),
        sa.UniqueConstraint("owner_code", "owner_region"),
    )
    engine = sa.create_engine(any_database_url)
    try:
        metadata.create_all(engine)
        first = seed_database(engine, rows=100)
        second = seed_database(engine, rows=100)
        assert first == {"owners": 10, "profiles": 10}
        assert second == {"owners": 10, "profiles": 10}  # ten new owners, ten new profiles
        assert counts(engine) == {"owners": 20, "profiles": 20}
        assert set(orphans(engine).values()) == {0}
        with engine.connect() as conn:
            prices = conn.execute(sa.select(owners.c.price)).scalars().all()
        assert all(0 <= p < 10_000 for p in prices)
    finally:
        engine.dispose()


def test_the_same_seed_writes_the_same_rows_as_on_sqlite(
    any_database_url: str, tmp_path: Path
) -> None:
    """Every database gets the rows SQLite gets: booleans as booleans, not TINYINT noise.

    MySQL/MariaDB store BOOLEAN as TINYINT(1); before the seed read it back as boolean,
    ``email_verified`` got integers up to 1000 there (error 1264) instead of True/False.
    Floats are compared to 6 significant digits: ``Float()`` is single precision on MySQL.
    """
    reference_url = f"sqlite:///{tmp_path / 'reference.sqlite3'}"
    with migrated_engine(any_database_url) as engine, migrated_engine(reference_url) as reference:
        assert seed_database(engine, rows=200, seed=3) == seed_database(reference, rows=200, seed=3)
        rows, expected = dump(engine), dump(reference)
        with engine.connect() as conn:
            verified = conn.execute(
                sa.text("SELECT email_verified, email_verified_at FROM users")
            ).all()
    assert rows.keys() == expected.keys()
    for table, table_rows in rows.items():
        assert table_rows == [
            tuple(pytest.approx(v, rel=1e-6) if isinstance(v, float) else v for v in row)
            for row in expected[table]
        ], table
    assert {flag for flag, _ in verified} == {True, False}
    assert all(at is None for flag, at in verified if not flag)
