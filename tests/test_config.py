"""Configuration: FLASK_ENV picks the class, DATABASE_URL wins, URLs are normalised and redacted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.engine import make_url

from softbee import create_app
from softbee.config import (
    ConfigurationError,
    DevelopmentConfig,
    ProductionConfig,
    TestingConfig,
    config_for,
)
from softbee.urls import BadDatabaseURL, normalise_url, parse_url, redact_text, redact_url
from tests.helpers import HUNG_AFTER_S

PG_URL = "postgresql+psycopg2://bee:secretpw@db.example.org:5432/softbee"


@pytest.fixture
def instance_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Make every new Flask app use a temporary instance folder (not the checkout's)."""
    path = tmp_path / "instance"
    monkeypatch.setattr(Flask, "auto_find_instance_path", lambda self: str(path))
    return path


@pytest.fixture(autouse=True)
def _no_test_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """TEST_DATABASE_URL (set under CI) must not leak into these config checks."""
    monkeypatch.delenv("TEST_DATABASE_URL", raising=False)


@pytest.mark.parametrize(
    ("flask_env", "expected"),
    [
        ("development", DevelopmentConfig),
        ("testing", TestingConfig),
        ("production", ProductionConfig),
        ("PRODUCTION", ProductionConfig),
    ],
)
def test_flask_env_selects_the_config_class(
    monkeypatch: pytest.MonkeyPatch, flask_env: str, expected: type
) -> None:
    """FLASK_ENV names the config class, case-insensitively."""
    monkeypatch.setenv("FLASK_ENV", flask_env)
    assert config_for() is expected


def test_development_is_the_default_environment() -> None:
    """Without FLASK_ENV, the development config is used."""
    assert config_for() is DevelopmentConfig


def test_unknown_flask_env_is_refused_with_the_valid_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """A typo in FLASK_ENV fails loudly instead of falling back silently."""
    monkeypatch.setenv("FLASK_ENV", "prod")
    with pytest.raises(ConfigurationError, match="development, production, testing"):
        config_for()


def test_create_app_follows_flask_env(monkeypatch: pytest.MonkeyPatch, instance_path: Path) -> None:
    """create_app() with no name builds the FLASK_ENV config."""
    monkeypatch.setenv("FLASK_ENV", "testing")
    app = create_app()
    assert app.config["SOFTBEE_ENV"] == "testing"
    assert app.config["TESTING"] is True


def test_development_default_is_a_sqlite_file_under_the_instance_path(
    instance_path: Path,
) -> None:
    """No DATABASE_URL in development: softbee-development.sqlite3 in instance/, created."""
    app = create_app("development")
    expected = instance_path / "softbee-development.sqlite3"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{expected}"
    assert instance_path.is_dir()


def test_testing_default_is_its_own_sqlite_file(instance_path: Path) -> None:
    """Tests never share the development database file."""
    app = create_app("testing")
    expected = instance_path / "softbee-testing.sqlite3"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{expected}"


@pytest.mark.parametrize("env_name", ["development", "testing", "production"])
def test_database_url_wins_in_every_environment(
    monkeypatch: pytest.MonkeyPatch, instance_path: Path, env_name: str
) -> None:
    """DATABASE_URL beats each environment's default."""
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    app = create_app(env_name)
    assert app.config["SQLALCHEMY_DATABASE_URI"] == PG_URL


def test_test_database_url_beats_database_url_under_testing(
    monkeypatch: pytest.MonkeyPatch, instance_path: Path
) -> None:
    """The testing config prefers TEST_DATABASE_URL, so tests never touch the app's database."""
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    monkeypatch.setenv("TEST_DATABASE_URL", "postgres://bee@localhost/softbee_test")
    app = create_app("testing")
    expected = "postgresql+psycopg2://bee@localhost/softbee_test"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == expected


def test_production_without_database_url_fails_at_create_app(instance_path: Path) -> None:
    """Production has no default database: create_app() raises one clear line."""
    with pytest.raises(ConfigurationError, match="DATABASE_URL") as raised:
        create_app("production")
    assert "\n" not in str(raised.value)


def test_production_without_database_url_still_imports() -> None:
    """The check happens at create_app(), not at import: importing every module is fine."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "TEST_DATABASE_URL"}}
    env["FLASK_ENV"] = "production"
    code = "import softbee, softbee.config, softbee.db, softbee.models, softbee.cli, softbee.seed"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=HUNG_AFTER_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("postgres://bee:pw@host/db", "postgresql+psycopg2://bee:pw@host/db"),
        ("postgresql://bee:pw@host:5433/db", "postgresql+psycopg2://bee:pw@host:5433/db"),
        ("  postgresql://bee@host/db\n", "postgresql+psycopg2://bee@host/db"),
        ("postgresql+psycopg2://bee@host/db", "postgresql+psycopg2://bee@host/db"),
        ("postgresql+psycopg://bee@host/db", "postgresql+psycopg://bee@host/db"),  # psycopg 3
        ("postgres+psycopg://bee@host/db", "postgres+psycopg://bee@host/db"),
        ("sqlite:///instance/softbee.sqlite3", "sqlite:///instance/softbee.sqlite3"),
    ],
)
def test_postgres_urls_are_normalised_to_psycopg2(raw: str, normalised: str) -> None:
    """Heroku-style postgres:// and driverless postgresql:// both get the psycopg2 driver;
    a URL naming its driver (psycopg 3's postgresql+psycopg://) is used as written."""
    assert normalise_url(raw) == normalised


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("mysql://bee:pw@host/db", "mysql+pymysql://bee:pw@host/db"),
        ("mysql://bee@host:3307/db?charset=utf8mb4",
         "mysql+pymysql://bee@host:3307/db?charset=utf8mb4"),
        ("mariadb://bee:pw@host/db", "mysql+pymysql://bee:pw@host/db"),
        ("  MySQL://bee@host/db\n", "mysql+pymysql://bee@host/db"),
        ("mysql+pymysql://bee@host/db", "mysql+pymysql://bee@host/db"),
        ("mysql+mysqldb://bee@host/db", "mysql+mysqldb://bee@host/db"),
        ("mariadb+pymysql://bee@host/db", "mariadb+pymysql://bee@host/db"),
    ],
)
def test_mysql_and_mariadb_urls_are_normalised_to_pymysql(raw: str, normalised: str) -> None:
    """Driverless mysql:// and mariadb:// get PyMySQL (installed); a named driver is kept."""
    assert normalise_url(raw) == normalised


def test_a_mysql_database_url_gives_the_app_a_pymysql_engine(
    monkeypatch: pytest.MonkeyPatch, instance_path: Path
) -> None:
    """``DATABASE_URL=mysql://...`` works as postgres:// does: the engine loads PyMySQL."""
    monkeypatch.setenv("DATABASE_URL", "mysql://bee:secretpw@db.example.org/softbee")
    app = create_app("production")
    expected = "mysql+pymysql://bee:secretpw@db.example.org/softbee"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == expected
    with app.app_context():
        engine = app.extensions["sqlalchemy"].engine
        assert engine.url.drivername == "mysql+pymysql"
        assert (engine.dialect.name, engine.dialect.driver) == ("mysql", "pymysql")


def test_malformed_mysql_url_error_hides_the_password() -> None:
    """A bad port in a mysql:// URL is refused in one line, password masked."""
    with pytest.raises(BadDatabaseURL, match="malformed database URL") as raised:
        parse_url("mysql://bee:secretpw@host:notaport/db")
    assert "secretpw" not in str(raised.value)


def test_database_url_is_normalised_by_create_app(
    monkeypatch: pytest.MonkeyPatch, instance_path: Path
) -> None:
    """The app's engine gets the normalised URL, so SQLAlchemy loads psycopg2."""
    monkeypatch.setenv("DATABASE_URL", "postgres://bee:secretpw@db.example.org/softbee")
    app = create_app("production")
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    assert url.drivername == "postgresql+psycopg2"
    with app.app_context():
        assert app.extensions["sqlalchemy"].engine.url.drivername == "postgresql+psycopg2"


def test_redact_url_hides_the_password_of_text_and_url_objects() -> None:
    """Both forms keep user, host and database but mask the password."""
    for url in (PG_URL, make_url(PG_URL)):
        shown = redact_url(url)
        assert "secretpw" not in shown
        assert shown == "postgresql+psycopg2://bee:***@db.example.org:5432/softbee"


def test_redact_text_masks_every_url_password_in_a_message() -> None:
    """Free text with several URLs (an exception message) loses every password."""
    text = (
        'connection to "postgres://a:secretpw@h1/x" failed; '
        "retry with mysql://b:other%40pw@h2:3306/y or sqlite:///local.db"
    )
    shown = redact_text(text)
    assert "secretpw" not in shown and "other%40pw" not in shown
    assert "postgres://a:***@h1/x" in shown and "mysql://b:***@h2:3306/y" in shown
    assert "sqlite:///local.db" in shown


def test_redact_text_leaves_text_without_passwords_alone() -> None:
    """Nothing to hide, nothing changed."""
    text = "postgresql://bee@host/db and sqlite:///x.db at 12:30"
    assert redact_text(text) == text


def test_malformed_url_error_names_the_problem_without_the_password() -> None:
    """parse_url explains what a URL should look like and hides the password it was given."""
    with pytest.raises(BadDatabaseURL, match="malformed database URL") as raised:
        parse_url("postgresql://bee:secretpw@host:notaport/db")
    assert "secretpw" not in str(raised.value)


@pytest.mark.parametrize("url", [
    "postgresql://u:p@h/db", "postgresql://u:p%40ss@h/db", "postgresql://u:p@ss@h/db",
    "mysql+pymysql://u:@h", "sqlite:///x.db", "postgresql://u@h/db", "postgresql://:pw@h",
    "postgresql://u:p:w@h", "postgresql://u:p/w@h", "postgresql://u:pw@[::1]:5432/db?x=1",
    "postgresql://u:p%2Fw%3Ax@h:5/db", "not a url", "a+b://x:y@",
])
def test_the_password_redaction_finds_is_the_one_sqlalchemy_parses(url: str) -> None:
    """Redaction reads URL passwords without importing SQLAlchemy, and finds the same ones."""
    from sqlalchemy.engine import make_url

    from softbee.urls import sqlalchemy_password

    try:
        expected = make_url(url).password
    except Exception:  # noqa: BLE001 - SQLAlchemy cannot parse it: neither finds a password
        expected = None
    assert sqlalchemy_password(url) == (None if expected is None else str(expected))
