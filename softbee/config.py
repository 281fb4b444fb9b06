"""Configuration classes chosen by ``FLASK_ENV``; ``DATABASE_URL`` wins when set."""

from __future__ import annotations

import os
from pathlib import Path

import click

from softbee.urls import normalise_url


class ConfigurationError(click.ClickException):
    """The app cannot be configured as asked (e.g. production without DATABASE_URL).

    A ``ClickException``, so ``flask db ...`` prints it as one ``Error:`` line
    instead of a traceback when it happens while the CLI loads the app.
    """


class BaseConfig:
    """Settings shared by every environment."""

    ENV_NAME = "base"
    SQLALCHEMY_TRACK_MODIFICATIONS = False
    SQLALCHEMY_ENGINE_OPTIONS: dict[str, object] = {"pool_pre_ping": True}
    SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-not-secret")

    @classmethod
    def database_url(cls, instance_path: str) -> str:
        """Return the database URL for this environment."""
        url = os.environ.get("DATABASE_URL")
        if url:
            return normalise_url(url)
        return cls.default_database_url(instance_path)

    @classmethod
    def default_database_url(cls, instance_path: str) -> str:
        """Return the URL used when ``DATABASE_URL`` is not set."""
        path = Path(instance_path) / f"softbee-{cls.ENV_NAME}.sqlite3"
        return f"sqlite:///{path}"


class DevelopmentConfig(BaseConfig):
    """Local work: an embedded SQLite file under ``instance/`` unless DATABASE_URL is set."""

    ENV_NAME = "development"
    DEBUG = True


class TestingConfig(BaseConfig):
    """Tests: a separate SQLite file unless DATABASE_URL (or TEST_DATABASE_URL) is set."""

    ENV_NAME = "testing"
    TESTING = True

    @classmethod
    def database_url(cls, instance_path: str) -> str:
        """Prefer ``TEST_DATABASE_URL``, then ``DATABASE_URL``, then a SQLite file."""
        url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
        return normalise_url(url) if url else cls.default_database_url(instance_path)


class ProductionConfig(BaseConfig):
    """Production: DATABASE_URL is required."""

    ENV_NAME = "production"
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True, "pool_size": 10}

    @classmethod
    def default_database_url(cls, instance_path: str) -> str:
        """Production has no default: refuse with one clear line."""
        raise ConfigurationError(
            "FLASK_ENV=production needs DATABASE_URL: set it in the environment or in .env"
        )


CONFIGS: dict[str, type[BaseConfig]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def config_for(env: str | None = None) -> type[BaseConfig]:
    """Return the config class for ``env`` (default: ``FLASK_ENV`` or development)."""
    name = (env or os.environ.get("FLASK_ENV") or "development").lower()
    try:
        return CONFIGS[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown FLASK_ENV {name!r}: use one of {', '.join(sorted(CONFIGS))}"
        ) from None
