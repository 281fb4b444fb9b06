"""Shape: Alembic cookbook, "Sharing a Connection across one or more
programmatic migration commands".

A caller that puts a Connection in ``config.attributes["connection"]`` gets it
used as is (env.py neither opens nor closes it, and
``context.begin_transaction()`` runs inside whatever transaction the caller
has). Without one, env.py falls back to the generic shape: its own engine
from ``sqlalchemy.url`` (filled from the app's engine when unset, as
Flask-Migrate's templates do, so ``flask db upgrade`` works on its own).
"""
import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app
from sqlalchemy import engine_from_config, pool

# this is the Alembic Config object, which provides
# access to the values within the .ini file in use.
config = context.config

# Interpret the config file for Python logging.
# This line sets up loggers basically.
if config.config_file_name is not None:
    fileConfig(config.config_file_name)
logger = logging.getLogger('alembic.env')

# only fill the URL in when the caller has not set one; taken from the app's
# engine, as Flask-Migrate 4.x does, so relative SQLite paths match the app's
if not config.get_main_option("sqlalchemy.url"):
    config.set_main_option(
        "sqlalchemy.url",
        current_app.extensions['migrate'].db.engine.url.render_as_string(
            hide_password=False).replace("%", "%%"),
    )
target_metadata = current_app.extensions['migrate'].db.metadata


def run_migrations_offline() -> None:
    """Run migrations in 'offline' mode: a URL, no Engine, SQL to the output."""
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )

    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run migrations in 'online' mode, on the caller's connection if it gave one."""
    connectable = config.attributes.get("connection", None)

    if connectable is None:
        # only create Engine if we don't have a Connection
        # from the outside
        connectable = engine_from_config(
            config.get_section(config.config_ini_section, {}),
            prefix="sqlalchemy.",
            poolclass=pool.NullPool,
        )

        with connectable.connect() as connection:
            context.configure(
                connection=connection, target_metadata=target_metadata
            )

            with context.begin_transaction():
                context.run_migrations()
    else:
        context.configure(
            connection=connectable,
            target_metadata=target_metadata,
        )

        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
