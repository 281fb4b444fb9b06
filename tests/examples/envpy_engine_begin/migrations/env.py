"""Shape: a hand-edited env.py that makes its own engine and uses engine.begin().

Seen in projects that "simplified" the template: ``sqlalchemy.create_engine``
on the app's ``SQLALCHEMY_DATABASE_URI`` (a second engine with its own pool,
never disposed, not the app's ``db.engine``), and ``with engine.begin()`` as
the transaction: the block commits on exit, and
``context.begin_transaction()`` is never called.
"""
import logging
from logging.config import fileConfig

import sqlalchemy
from alembic import context
from flask import current_app

config = context.config

if config.config_file_name is not None:
    fileConfig(config.config_file_name)
logger = logging.getLogger('alembic.env')

target_metadata = current_app.extensions['migrate'].db.metadata


def run_migrations_offline():
    """Run migrations in 'offline' mode: a URL, no Engine, SQL to the output."""
    context.configure(
        url=current_app.config['SQLALCHEMY_DATABASE_URI'],
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    """Run migrations in 'online' mode inside ``engine.begin()``."""
    engine = sqlalchemy.create_engine(current_app.config['SQLALCHEMY_DATABASE_URI'])
    with engine.begin() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
