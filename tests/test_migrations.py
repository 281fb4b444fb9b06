"""The revision history: data survives it both ways on every database; the history is tidy."""

from __future__ import annotations

import ast
import inspect
import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import Script, ScriptDirectory

from softbee import create_app
from softbee.db import MIGRATIONS_DIR
from softbee.seed import seed_database

BEFORE_FULL_NAME = "5e4a9c1f6b05"
FULL_NAME = "6f5b0d2a7c06"
HEAD = "8b7d2f4c9e08"

BEEKEEPERS = [
    ("ana@example.org", "ana", "Ana", "Abeille"),
    ("jose@example.org", "jose", "José", "García Miel"),
    ("sean@example.org", "sean", "Seán", "O'Brien"),
    ("li@example.org", "li", "Li", "Wei"),
]
VAGUE_MESSAGES = {"update database", "changes", "update", "migration", "fix", "wip", "auto"}


@contextmanager
def migration_config(url: str) -> Iterator[Config]:
    """The alembic config ``flask db`` uses, the app bound to ``url`` and its context pushed."""
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=url)
    with app.app_context():
        try:
            yield app.extensions["migrate"].migrate.get_config()
        finally:
            app.extensions["sqlalchemy"].engine.dispose()


@contextmanager
def connect(url: str) -> Iterator[sa.Connection]:
    """A connection on ``url`` whose work is committed on exit."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def users(url: str, *, with_full_name: bool) -> list[tuple[object, ...]]:
    """Every user as (id, first_name, last_name[, full_name]), ordered by id."""
    columns = "id, first_name, last_name" + (", full_name" if with_full_name else "")
    with connect(url) as conn:
        return [tuple(r) for r in conn.execute(sa.text(f"SELECT {columns} FROM users ORDER BY id"))]


def user_columns(url: str) -> set[str] | None:
    """The columns of ``users``, or None when the table does not exist."""
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        if not inspector.has_table("users"):
            return None
        return {c["name"] for c in inspector.get_columns("users")}
    finally:
        engine.dispose()


def table_counts(url: str) -> dict[str, int]:
    """Rows per application table."""
    engine = sa.create_engine(url)
    try:
        names = [n for n in sa.inspect(engine).get_table_names() if n != "alembic_version"]
        with engine.connect() as conn:
            return {
                n: conn.execute(sa.select(sa.func.count()).select_from(sa.table(n))).scalar_one()
                for n in names
            }
    finally:
        engine.dispose()


def revisions() -> list[Script]:
    """Every revision in migrations/, base first."""
    return list(reversed(list(ScriptDirectory(str(MIGRATIONS_DIR)).walk_revisions())))


def function_does_something(function: object) -> bool:
    """Whether a function's body holds more than a docstring and ``pass``."""
    tree = ast.parse(inspect.getsource(function))  # type: ignore[arg-type]
    body = tree.body[0].body  # type: ignore[attr-defined]
    return any(
        not isinstance(node, ast.Pass)
        and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
        for node in body
    )


def test_full_name_is_backfilled_and_survives_downgrade_and_upgrade(any_database_url: str) -> None:
    """Rows made before full_name keep first/last names and get full_name, both ways."""
    with migration_config(any_database_url) as config:
        command.upgrade(config, BEFORE_FULL_NAME)
        with connect(any_database_url) as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO users (email, username, password_hash, first_name, last_name)"
                    " VALUES (:email, :username, 'x', :first, :last)"
                ),
                [dict(zip(("email", "username", "first", "last"), b)) for b in BEEKEEPERS],
            )
        engine = sa.create_engine(any_database_url)
        seed_database(engine, rows=500)  # apiaries, hives, inspections point at these users
        engine.dispose()
        before = users(any_database_url, with_full_name=False)
        counts_before = table_counts(any_database_url)

        command.upgrade(config, FULL_NAME)
        upgraded = users(any_database_url, with_full_name=True)
        assert table_counts(any_database_url) == counts_before
        assert [row[:3] for row in upgraded] == before
        assert [row[3] for row in upgraded] == [f"{first} {last}" for _, first, last in before]
        # NOT NULL holds: IntegrityError, or MySQL's 1364 (an OperationalError in PyMySQL).
        not_null = (sa.exc.IntegrityError, sa.exc.OperationalError)
        with pytest.raises(not_null, match="full_name"), connect(any_database_url) as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO users (email, username, password_hash, first_name, last_name)"
                    " VALUES ('nofull@example.org', 'nofull', 'x', 'No', 'Full')"
                )
            )

        command.downgrade(config, BEFORE_FULL_NAME)
        columns = user_columns(any_database_url) or set()
        assert "full_name" not in columns
        assert {"first_name", "last_name"} <= columns
        assert users(any_database_url, with_full_name=False) == before
        assert table_counts(any_database_url) == counts_before

        command.upgrade(config, FULL_NAME)
        assert users(any_database_url, with_full_name=True) == upgraded


def test_rows_made_before_full_name_reach_head(any_database_url: str) -> None:
    """Upgrading a populated database through every later revision keeps its users."""
    with migration_config(any_database_url) as config:
        command.upgrade(config, BEFORE_FULL_NAME)
        with connect(any_database_url) as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO users (email, username, password_hash, first_name, last_name)"
                    " VALUES ('ana@example.org', 'ana', 'x', 'Ana', 'Abeille')"
                )
            )
        command.upgrade(config, "head")
        with connect(any_database_url) as conn:
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
            names = conn.execute(sa.text("SELECT full_name FROM users")).scalars().all()
    assert version == HEAD
    assert names == ["Ana Abeille"]


def test_head_schema_has_the_named_varroa_index(any_database_url: str) -> None:
    """The batch revision leaves ix_inspections_varroa_mites_per_100 on the column."""
    with migration_config(any_database_url) as config:
        command.upgrade(config, "head")
    engine = sa.create_engine(any_database_url)
    try:
        found = sa.inspect(engine).get_indexes("inspections")
        indexes = {i["name"]: i["column_names"] for i in found}
    finally:
        engine.dispose()
    assert indexes["ix_inspections_varroa_mites_per_100"] == ["varroa_mites_per_100"]


def test_server_defaults_fill_rows_inserted_without_them(any_database_url: str) -> None:
    """At head, rows written by plain SQL get the migrations' server defaults on every database."""
    with migration_config(any_database_url) as config:
        command.upgrade(config, "head")
    with connect(any_database_url) as conn:
        conn.execute(
            sa.text(
                "INSERT INTO users (email, username, password_hash, first_name, last_name,"
                " full_name) VALUES ('ana@example.org', 'ana', 'x', 'Ana', 'Abeille',"
                " 'Ana Abeille')"
            )
        )
        conn.execute(sa.text("INSERT INTO apiaries (owner_id, name) SELECT id, 'Hill' FROM users"))
        conn.execute(
            sa.text("INSERT INTO hives (apiary_id, hive_number) SELECT id, 1 FROM apiaries")
        )
        conn.execute(
            sa.text(
                "INSERT INTO treatments (hive_id, product, started_at)"
                " SELECT id, 'Apivar', '2024-05-01 10:00:00' FROM hives"
            )
        )
    with connect(any_database_url) as conn:
        user = conn.execute(
            sa.text("SELECT email_verified, created_at, updated_at FROM users")
        ).one()
        hive = conn.execute(
            sa.text("SELECT hive_type, status, health_status, created_at FROM hives")
        ).one()
        target = conn.execute(sa.text("SELECT target FROM treatments")).scalar_one()
    assert user.email_verified in (False, 0)  # False, or 0 in a TINYINT(1)
    assert user.created_at is not None and user.updated_at is not None
    assert tuple(hive)[:3] == ("langstroth", "active", "unknown")
    assert hive.created_at is not None
    assert target == "varroa"


def schema(url: str) -> dict[str, dict[str, object]]:
    """Every application table's columns, keys, indexes and constraints, as reflected."""
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        tables = sorted(set(inspector.get_table_names()) - {"alembic_version"})
        return {
            table: {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                    for c in inspector.get_columns(table)
                ],
                "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
                "foreign_keys": sorted(
                    (fk["name"], tuple(fk["constrained_columns"]), fk["referred_table"],
                     tuple(fk["referred_columns"]), repr(sorted(fk["options"].items())))
                    for fk in inspector.get_foreign_keys(table)
                ),
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                    for i in inspector.get_indexes(table)
                ),
                "unique": sorted(
                    (u["name"], tuple(u["column_names"]))
                    for u in inspector.get_unique_constraints(table)
                ),
            }
            for table in tables
        }
    finally:
        engine.dispose()


def test_every_downgrade_gives_back_the_schema_its_upgrade_found(any_database_url: str) -> None:
    """Up one revision at a time, seed at head, then down one at a time to base and up again.

    Each downgrade must leave exactly the schema recorded at that revision on the way up,
    with rows in the tables (foreign keys make drop order matter on MySQL/MariaDB). Unlike
    pytest-alembic's ``test_downgrade_leaves_no_trace`` this needs no transactional DDL.
    """
    history = [script.revision for script in revisions()]
    with migration_config(any_database_url) as config:
        seen = {None: schema(any_database_url)}
        for revision in history:
            command.upgrade(config, "+1")
            seen[revision] = schema(any_database_url)
        engine = sa.create_engine(any_database_url)
        seed_database(engine, rows=200)
        engine.dispose()
        assert min(table_counts(any_database_url).values()) > 0

        for revision, previous in reversed(list(zip(history, [None, *history[:-1]]))):
            command.downgrade(config, "-1")
            assert schema(any_database_url) == seen[previous], f"downgrade of {revision}"
        assert schema(any_database_url) == {}
        assert user_columns(any_database_url) is None

        command.upgrade(config, "head")
        assert schema(any_database_url) == seen[HEAD]


def test_env_migrates_the_connection_given_in_config_attributes(tmp_path: Path) -> None:
    """A connection in config.attributes is migrated, not the app's own database."""
    app_url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    other_url = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    other = sa.create_engine(other_url)
    try:
        with migration_config(app_url) as config, other.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
        tables = set(sa.inspect(other).get_table_names())
    finally:
        other.dispose()
    assert {"users", "inspections", "treatments", "alembic_version"} <= tables
    assert user_columns(app_url) is None


@pytest.mark.postgres
def test_env_leaves_the_given_connection_open_and_uncommitted(postgres_url: str) -> None:
    """env.py neither commits nor closes a shared connection: rolling it back undoes the DDL."""
    engine = sa.create_engine(postgres_url)
    try:
        with migration_config(postgres_url) as config, engine.connect() as conn:
            transaction = conn.begin()
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            assert not conn.closed
            assert "inspections" in sa.inspect(conn).get_table_names()
            transaction.rollback()
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_history_is_linear_with_one_head_and_at_least_seven_revisions() -> None:
    """Seven or more revisions, one base, one head, each revising the one before."""
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    history = revisions()
    assert len(history) >= 7
    assert script.get_heads() == [HEAD]
    assert script.get_bases() == [history[0].revision]
    for previous, current in itertools.pairwise(history):
        assert current.down_revision == previous.revision


@pytest.mark.parametrize("script", revisions(), ids=lambda s: s.revision)
def test_revision_has_a_specific_message(script: Script) -> None:
    """Messages say what changed: three words or more, none of the vague ones."""
    message = (script.doc or "").strip()
    assert message.lower().rstrip(".") not in VAGUE_MESSAGES
    assert len(message.split()) >= 3, message


@pytest.mark.parametrize("script", revisions(), ids=lambda s: s.revision)
def test_revision_has_a_real_upgrade_and_downgrade(script: Script) -> None:
    """Neither upgrade() nor downgrade() is empty."""
    assert function_does_something(script.module.upgrade)
    assert function_does_something(script.module.downgrade)


@pytest.mark.parametrize("script", revisions(), ids=lambda s: s.revision)
def test_revision_file_is_named_after_its_id_and_slug(script: Script) -> None:
    """Files are ``<rev>_<slug>.py`` with a 12-hex-digit id."""
    name = Path(script.path).name
    assert re.fullmatch(r"[0-9a-f]{12}", script.revision)
    assert re.fullmatch(rf"{script.revision}_[a-z0-9_]+\.py", name), name
