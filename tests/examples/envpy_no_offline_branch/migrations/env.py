"""Shape: the app's engine, online only (no ``is_offline_mode()`` branch)."""
import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)
logger = logging.getLogger("alembic.env")

database = current_app.extensions["migrate"].db
target_metadata = database.metadata

with database.engine.connect() as connection:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
