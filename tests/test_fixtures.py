"""The database fixtures: MariaDB databases come and go; a missing server skips, or fails in CI."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import tests.conftest as fixtures


def mysql_databases() -> set[str]:
    """The databases on the test MariaDB server."""
    engine = sa.create_engine(fixtures._mysql_admin_url())
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.text("SHOW DATABASES")).scalars())
    finally:
        engine.dispose()


def test_test_mysql_url_names_the_server_and_its_database_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TEST_MYSQL_URL (driverless is fine) picks the server; its own database name is not used."""
    monkeypatch.setenv("TEST_MYSQL_URL", "mysql://bee:secretpw@db.example.org:3307/ignored")
    admin = make_url(fixtures._mysql_admin_url())
    assert (admin.drivername, admin.host, admin.port) == ("mysql+pymysql", "db.example.org", 3307)
    assert (admin.username, admin.password, admin.database) == ("bee", "secretpw", None)


def test_without_a_server_mysql_tests_skip_but_fail_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing listens on port 1: a skip for a developer, a failure when CI=true."""
    monkeypatch.setenv("TEST_MYSQL_URL", "mysql://root@127.0.0.1:1")
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(fixtures, "_MYSQL_REASON", [])
    with pytest.raises(pytest.skip.Exception, match="MySQL/MariaDB not reachable"):
        fixtures.require_mysql()

    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(fixtures, "_MYSQL_REASON", [])
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        fixtures.require_mysql()


@pytest.mark.mysql
def test_a_mysql_database_is_dropped_even_with_a_session_inside_a_transaction() -> None:
    """create makes a fresh utf8mb4 database; drop ends its sessions (an open transaction
    holding a table's metadata lock would block DROP DATABASE) and removes it."""
    url = fixtures.create_mysql_database()
    name = make_url(url).database
    engine = sa.create_engine(url)
    conn = engine.connect()
    try:
        assert name in mysql_databases()
        charset = conn.execute(
            sa.text(
                "SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA"
                " WHERE SCHEMA_NAME = :name"
            ),
            {"name": name},
        ).scalar_one()
        conn.execute(sa.text("CREATE TABLE held (id INT PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO held VALUES (1)"))
        conn.commit()
        conn.execute(sa.text("SELECT * FROM held"))  # a transaction open, its lock held
        fixtures.drop_mysql_database(url)
        assert charset == "utf8mb4"
        assert name not in mysql_databases()
    finally:
        conn.invalidate()  # the drop killed this session: nothing to roll back
        conn.close()
        engine.dispose()


@pytest.mark.postgres
@fixtures.each_pg_driver
def test_postgres_url_runs_on_the_driver_the_test_names(
    postgres_url: str, request: pytest.FixtureRequest
) -> None:
    """Drivers are a test dimension: each_pg_driver hands the test a URL on psycopg2, then psycopg 3."""
    driver = request.node.callspec.params["postgres_url"]
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
            assert conn.dialect.driver == driver
    finally:
        engine.dispose()


@pytest.mark.mysql
@fixtures.each_mysql_driver
def test_mysql_url_runs_on_the_driver_the_test_names(
    mysql_url: str, request: pytest.FixtureRequest
) -> None:
    """each_mysql_driver hands the test a URL on PyMySQL, then mysqlclient (MySQLdb)."""
    driver = request.node.callspec.params["mysql_url"]
    engine = sa.create_engine(mysql_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
            assert conn.dialect.driver == driver
    finally:
        engine.dispose()


def test_a_missing_driver_skips_its_tests_but_fails_them_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Like a missing server: mysqlclient not built is a skip for a developer, a failure in CI."""
    monkeypatch.setitem(fixtures.DRIVER_MODULES, "mysqldb", ("softbee_no_such_driver", "mysqlclient"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="driver mysqldb not installed"):
        fixtures.require_driver("mysqldb")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        fixtures.require_driver("mysqldb")
