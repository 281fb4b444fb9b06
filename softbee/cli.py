"""``flask softbee ...`` commands, and one-line errors for ``flask db ...``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from softbee.runbook.errors import first_line
from softbee.urls import redact_text

softbee_cli = AppGroup("softbee", help="Soft-Bee maintenance commands.")


def one_line_errors(callback: Callable[..., Any]) -> Callable[..., Any]:
    """Turn database connection errors into one ``Error:`` line and exit status 1."""

    @functools.wraps(callback)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except OperationalError as exc:
            reason = redact_text(first_line(exc.orig if exc.orig is not None else exc))
            raise click.ClickException(
                f"cannot reach the database: {reason} (check DATABASE_URL and that the server runs)"
            ) from None
        except ArgumentError as exc:
            reason = redact_text(first_line(exc))
            # SQLAlchemy raises it for other bad arguments too; an unknown dialect or
            # driver (NoSuchModuleError, "Can't load plugin") is the URL's.
            if "URL" not in str(exc) and not isinstance(exc, NoSuchModuleError):
                raise click.ClickException(reason) from None
            raise click.ClickException(
                f"malformed DATABASE_URL: {reason} (the form is dialect+driver://user:password@host/name)"
            ) from None

    wrapped.__softbee_wrapped__ = True  # type: ignore[attr-defined]
    return wrapped


@softbee_cli.command("seed")
@click.option("--rows", default=1000, show_default=True, help="Rows in the largest table.")
@click.option("--seed", "seed_value", default=42, show_default=True, help="Random seed.")
@click.option("--if-empty", is_flag=True, help="Do nothing when any table already has rows.")
@one_line_errors
def seed_command(rows: int, seed_value: int, if_empty: bool) -> None:
    """Fill the tables present at the database's current revision with sample rows."""
    from softbee.db import db
    from softbee.runbook.review.counts import row_counts
    from softbee.seed import seed_database

    if if_empty:
        with db.engine.connect() as conn:
            existing = sum(row_counts(conn).values())
        if existing:
            click.echo(f"sample data skipped: the database already has {existing} rows")
            return
    seed_database(db.engine, rows=rows, seed=seed_value,
                  progress=lambda table, count: click.echo(f"{table}: +{count}"))


def init_app(app: Flask) -> None:
    """Register ``flask softbee`` and wrap ``flask db`` commands with one-line errors."""
    app.cli.add_command(softbee_cli)
    db_group = app.cli.commands.get("db")
    if isinstance(db_group, click.Group):
        for command in db_group.commands.values():
            if command.callback and not getattr(command.callback, "__softbee_wrapped__", False):
                command.callback = one_line_errors(command.callback)
