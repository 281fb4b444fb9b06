"""Soft-Bee API: the app factory. ``FLASK_APP=softbee`` makes ``flask db ...`` work."""

from __future__ import annotations

from typing import Any

from dotenv import load_dotenv
from flask import Flask

__all__ = ["create_app"]


def create_app(config_name: str | None = None, **overrides: Any) -> Flask:
    """Build the Flask app for ``config_name`` (default: ``FLASK_ENV`` or development)."""
    from softbee import cli, db
    from softbee.config import config_for

    load_dotenv()
    config = config_for(config_name)
    app = Flask(__name__, instance_relative_config=False)
    app.config.from_object(config)
    app.config["SOFTBEE_ENV"] = config.ENV_NAME
    if "SQLALCHEMY_DATABASE_URI" not in overrides:
        url = config.database_url(app.instance_path)
        if url.startswith("sqlite:///"):
            from pathlib import Path

            Path(app.instance_path).mkdir(parents=True, exist_ok=True)
        app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config.update(overrides)
    db.init_app(app)
    cli.init_app(app)
    return app
