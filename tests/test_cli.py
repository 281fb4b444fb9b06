"""The ``flask`` command line, run as a user would: a subprocess with FLASK_APP=softbee."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.helpers import HUNG_AFTER_S

HEAD = "8b7d2f4c9e08"
UNREACHABLE_URL = "postgresql://u:secretpw@127.0.0.1:1/x"
MALFORMED_URL = "postgresql://u:secretpw@127.0.0.1:notaport/x"


def flask(*args: str, database_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m flask <args>`` against ``database_url`` from ``cwd``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "TEST_DATABASE_URL", "FLASK_ENV", "FLASK_APP"}
    }
    env.update(FLASK_APP="softbee", DATABASE_URL=database_url, PYTHONWARNINGS="ignore")
    return subprocess.run(
        [sys.executable, "-m", "flask", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=HUNG_AFTER_S,
        check=False,
    )


def assert_short_error(result: subprocess.CompletedProcess[str], *, mentions: str) -> None:
    """A failed command: non-zero exit, a few lines on stderr, the reason, no password."""
    assert result.returncode != 0
    assert "secretpw" not in result.stderr + result.stdout
    assert mentions in result.stderr.lower()
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) < 5, result.stderr


def test_db_upgrade_then_seed_fills_a_fresh_sqlite_database(tmp_path: Path) -> None:
    """``flask db upgrade`` reaches head, then ``flask softbee seed --rows 100`` adds rows."""
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"

    upgrade = flask("db", "upgrade", database_url=url, cwd=tmp_path)
    assert upgrade.returncode == 0, upgrade.stderr
    seed = flask("softbee", "seed", "--rows", "100", database_url=url, cwd=tmp_path)
    assert seed.returncode == 0, seed.stderr

    assert "inspections: +100" in seed.stdout.splitlines()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
            inspections = conn.execute(sa.text("SELECT COUNT(*) FROM inspections")).scalar_one()
            users = conn.execute(sa.text("SELECT COUNT(*) FROM users")).scalar_one()
    finally:
        engine.dispose()
    assert version == HEAD
    assert (inspections, users) == (100, 2)


@pytest.mark.mysql
def test_db_upgrade_seed_and_downgrade_on_mariadb_from_a_driverless_mysql_url(
    mysql_url: str, tmp_path: Path
) -> None:
    """``mysql://`` works as postgres:// does; seed fills MariaDB; the history goes back down."""
    url = sa.engine.make_url(mysql_url)
    assert url.drivername == "mysql+pymysql"
    driverless = url.set(drivername="mysql").render_as_string(hide_password=False)

    upgrade = flask("db", "upgrade", database_url=driverless, cwd=tmp_path)
    assert upgrade.returncode == 0, upgrade.stderr
    seed = flask("softbee", "seed", "--rows", "300", database_url=driverless, cwd=tmp_path)
    assert seed.returncode == 0, seed.stderr
    assert "inspections: +300" in seed.stdout.splitlines()

    engine = sa.create_engine(mysql_url)
    try:
        with engine.connect() as conn:
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
            inspections = conn.execute(sa.text("SELECT COUNT(*) FROM inspections")).scalar_one()
            flags = set(conn.execute(sa.text("SELECT email_verified FROM users")).scalars())
        assert version == HEAD
        assert inspections == 300
        assert flags == {0, 1}

        downgrade = flask("db", "downgrade", "base", database_url=driverless, cwd=tmp_path)
        assert downgrade.returncode == 0, downgrade.stderr
        assert sa.inspect(engine).get_table_names() == ["alembic_version"]
    finally:
        engine.dispose()


def test_unreachable_database_gives_one_line_without_the_password(tmp_path: Path) -> None:
    """A server that refuses connections: ``Error: cannot reach the database ...``, exit 1."""
    result = flask("db", "upgrade", database_url=UNREACHABLE_URL, cwd=tmp_path)
    assert_short_error(result, mentions="cannot reach the database")
    assert result.returncode == 1


def test_seed_on_unreachable_database_gives_one_line_without_the_password(tmp_path: Path) -> None:
    """``flask softbee seed`` reports the same short error as ``flask db``."""
    result = flask("softbee", "seed", "--rows", "10", database_url=UNREACHABLE_URL, cwd=tmp_path)
    assert_short_error(result, mentions="cannot reach the database")


def test_malformed_database_url_fails_without_showing_the_password(tmp_path: Path) -> None:
    """Whatever the output looks like, a malformed URL exits non-zero and leaks no password."""
    result = flask("db", "upgrade", database_url=MALFORMED_URL, cwd=tmp_path)
    assert result.returncode != 0
    assert "secretpw" not in result.stderr + result.stdout


@pytest.mark.parametrize(("url", "mentions"), [
    (MALFORMED_URL, "database url"), ("not a database url", "database url"),
    ("nosuchdb://u:secretpw@h/x", "database_url 'nosuchdb://u:***@h/x': can't load plugin"),
], ids=["bad-port", "garbage", "unknown-dialect"])
def test_malformed_database_url_gives_a_short_error(tmp_path: Path, url: str, mentions: str) -> None:
    """A malformed DATABASE_URL is named in a few lines, with no traceback."""
    result = flask("db", "upgrade", database_url=url, cwd=tmp_path)
    assert_short_error(result, mentions=mentions)


def test_an_argument_error_that_is_not_the_url_is_not_blamed_on_database_url() -> None:
    """SQLAlchemy's ArgumentError also means a bad column or table argument: said as it is."""
    import click
    from sqlalchemy.exc import ArgumentError

    from softbee.cli import one_line_errors

    @one_line_errors
    def bad_table() -> None:
        raise ArgumentError("Column expression expected for argument 'remote_side'; got 'x'.")

    with pytest.raises(click.ClickException) as caught:
        bad_table()
    assert caught.value.message.startswith("Column expression expected")
    assert "DATABASE_URL" not in caught.value.message


@pytest.mark.postgres
def test_a_run_stopped_by_sigterm_says_where_the_database_is_and_to_run_it_again(
    postgres_url: str,
) -> None:
    """Before: "failed: Terminated: stopped by signal SIGTERM" and nothing more (fault matrix):
    the line now reads the database the run left, as a failed migration's line does."""
    from softbee.runbook import cli
    from tests.helpers import HIVE_HEALTH, project_at

    project_at(postgres_url, HIVE_HEALTH)
    line = ("softbee-runbook: runbook 'upgrade_downgrade' failed at step '3. Migrate': "
            "Terminated: stopped by signal SIGTERM (see /archive/x.html)")
    said = cli._stopped_line(line, "upgrade_downgrade", {"database_url": postgres_url})
    assert said.startswith(line.removesuffix(" (see /archive/x.html)")), said
    assert f"the database is at revision {HIVE_HEALTH} (committed)" in said, said
    assert "run it again" in said and said.endswith("(see /archive/x.html)"), said
    assert "\n" not in said and "rolled back" not in said, said
    unreachable = cli._stopped_line(line, "upgrade_downgrade", {"database_url": UNREACHABLE_URL})
    assert "could not be read" in unreachable and "secretpw" not in unreachable, unreachable
