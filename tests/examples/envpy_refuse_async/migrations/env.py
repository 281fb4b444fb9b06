"""Shape to REFUSE: Alembic's ``async`` template, on a URL derived from the app's.

WHY IT CANNOT BE ROUTED: env.py builds an AsyncEngine of its own
(``async_engine_from_config``) and runs the migrations through
``connection.run_sync(...)`` inside ``asyncio.run(...)``. The runbook's one
guarded connection is a synchronous Connection; it cannot be handed to this
env.py, and the async connection it opens instead is a second one.
It also needs ``greenlet`` and an async driver (``aiosqlite``/``asyncpg``).
"""
import asyncio
from logging.config import fileConfig

from alembic import context
from flask import current_app
from sqlalchemy import pool
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import async_engine_from_config

config = context.config

if config.config_file_name is not None:
    fileConfig(config.config_file_name)

# sqlite:///x -> sqlite+aiosqlite:///x, postgresql://... -> postgresql+asyncpg://...
ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
app_url = make_url(current_app.config["SQLALCHEMY_DATABASE_URI"])
async_url = app_url.set(drivername=ASYNC_DRIVERS.get(app_url.get_backend_name(), app_url.drivername))
config.set_main_option(
    "sqlalchemy.url", async_url.render_as_string(hide_password=False).replace("%", "%%")
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


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)

    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    """Create an AsyncEngine and run the migrations on one of its connections."""
    connectable = async_engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )

    async with connectable.connect() as connection:
        await connection.run_sync(do_run_migrations)

    await connectable.dispose()


def run_migrations_online() -> None:
    """Run migrations in 'online' mode."""
    asyncio.run(run_async_migrations())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
