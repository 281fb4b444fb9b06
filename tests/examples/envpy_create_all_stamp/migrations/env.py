"""Shape: env.py that builds its own app and runs ``db.create_all()`` before migrating.

It does not use the app the caller (``flask db``, a runbook) already pushed: it calls
``hivelog.create_app()`` itself, pushes that app's context, copies that app's
``SQLALCHEMY_DATABASE_URI`` into ``sqlalchemy.url`` and, before anything else, creates every
table the models declare. On an empty database the first revision then fails (its tables
exist already), so the project installs with ``flask db stamp head`` (create_all, then the
stamp) and only later revisions ever run through ``upgrade``. In offline mode it still
connects and creates tables: rendering SQL is not read-only here.
"""
import logging
from logging.config import fileConfig

from alembic import context
from sqlalchemy import engine_from_config, pool

from hivelog import create_app, db

app = create_app()
config = context.config
fileConfig(config.config_file_name)
logger = logging.getLogger('alembic.env')


def run_migrations_offline():
    """Offline: the URL only, SQL to the output."""
    context.configure(url=config.get_main_option("sqlalchemy.url"),
                      target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    """Online: an engine of its own from sqlalchemy.url, one connection."""
    def process_revision_directives(context, revision, directives):
        if getattr(config.cmd_opts, "autogenerate", False):
            if directives[0].upgrade_ops.is_empty():
                directives[:] = []
                logger.info("No changes in schema detected.")

    engine = engine_from_config(config.get_section(config.config_ini_section),
                                prefix="sqlalchemy.", poolclass=pool.NullPool)
    connection = engine.connect()
    context.configure(connection=connection, target_metadata=target_metadata,
                      process_revision_directives=process_revision_directives)
    try:
        with context.begin_transaction():
            context.run_migrations()
    finally:
        connection.close()


with app.app_context():
    config.set_main_option("sqlalchemy.url", app.config["SQLALCHEMY_DATABASE_URI"].replace("%", "%%"))
    target_metadata = db.metadata
    db.create_all()

    if context.is_offline_mode():
        run_migrations_offline()
    else:
        run_migrations_online()
