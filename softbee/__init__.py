"""Soft-Bee API: the app factory. ``FLASK_APP=softbee`` makes ``flask db ...`` work.

Flask is imported by :func:`create_app`, not here: ``softbee.runbook`` lives in this
package, and its archive and fleet commands never need Flask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["create_app"]


def create_app(config_name: str | None = None, **overrides: Any) -> Flask:
    """Build the Flask app for ``config_name`` (default: ``FLASK_ENV`` or development)."""
    from dotenv import load_dotenv
    from flask import Flask

    from softbee import cli, db
    from softbee.config import config_for

    load_dotenv()
    config = config_for(config_name)
    app = Flask(__name__, instance_relative_config=False)
    app.config.from_object(config)
    app.config["SOFTBEE_ENV"] = config.ENV_NAME
    app.config["SQLALCHEMY_DATABASE_URI"] = config.database_url(app.instance_path)
    app.config.update(overrides)
    app.config["SQLALCHEMY_DATABASE_URI"] = _checked_url(str(app.config["SQLALCHEMY_DATABASE_URI"]))
    db.init_app(app)
    cli.init_app(app)
    return app


def _checked_url(url: str) -> str:
    """Normalise ``url`` and fail with one line when it cannot work; make a SQLite file's folder."""
    from pathlib import Path

    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    from softbee.config import ConfigurationError
    from softbee.urls import BadDatabaseURL, normalise_url, parse_url, redact_text

    try:
        parsed = parse_url(url)
        parsed.get_dialect()
    except BadDatabaseURL as exc:
        raise ConfigurationError(f"DATABASE_URL: {exc}") from None
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise ConfigurationError(f"DATABASE_URL {redact_text(url)!r}: {redact_text(str(exc))}") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return normalise_url(url)
