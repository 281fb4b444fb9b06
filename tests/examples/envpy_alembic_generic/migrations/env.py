"""Shape: Alembic's ``generic`` template, pointed at hivelog's metadata.

The URL is whatever ``sqlalchemy.url`` main option the caller set (alembic.ini
here has none); env.py builds its own engine with ``engine_from_config`` and a
NullPool, opens one connection and lets ``context.begin_transaction()`` manage
the transaction. It never looks at the Flask app or ``configure_args``.
"""
from logging.config import fileConfig

from alembic import context
from hivelog import db
from sqlalchemy import engine_from_config, pool

# this is the Alembic Config object, which provides
# access to the values within the .ini file in use.
config = context.config

# Interpret the config file for Python logging.
# This line sets up loggers basically.
if config.config_file_name is not None:
    fileConfig(config.config_file_name)

# the models' MetaData, for 'autogenerate' support
target_metadata = db.metadata


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
    """Run migrations in 'online' mode: an Engine from the config, one connection."""
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


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
