"""Shape to REFUSE: env.py migrates a database of its own, not the app's.

WHY IT CANNOT BE ROUTED: at import this env.py overwrites ``sqlalchemy.url``
with ``HIVELOG_OTHER_URL`` (falling back to a hard-coded second database),
then builds its own engine from it. Whatever connection or URL the runbook
supplies, the migrations run somewhere else, so the runbook's guards (locks,
counts, rehearsal) would protect the wrong database.
"""
import logging
import os
from logging.config import fileConfig

from alembic import context
from hivelog import db
from sqlalchemy import engine_from_config, pool

config = context.config

if config.config_file_name is not None:
    fileConfig(config.config_file_name)
logger = logging.getLogger('alembic.env')

# NOT the app's SQLALCHEMY_DATABASE_URI: a second, hard-coded database.
OTHER_URL = os.environ.get("HIVELOG_OTHER_URL", "sqlite:///hivelog_other.sqlite3")
config.set_main_option("sqlalchemy.url", OTHER_URL.replace("%", "%%"))
target_metadata = db.metadata


def run_migrations_offline():
    """Run migrations in 'offline' mode against the other database's URL."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    """Run migrations in 'online' mode on an engine for the other database."""
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
