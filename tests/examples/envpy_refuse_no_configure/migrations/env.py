"""Shape to REFUSE: env.py never calls ``context.configure`` in this process.

WHY IT CANNOT BE ROUTED: real env.py files of this shape hand the work to
another process, e.g.::

    subprocess.run(["alembic", "-c", "deploy/alembic.ini", "upgrade", "head"], check=True)

so no MigrationContext is ever configured here: there is no connection for the
runbook to supply or to check, and nothing it could guard. To keep tests safe
this example only logs and returns (no subprocess, no database access).
"""
import logging
from logging.config import fileConfig

from alembic import context

config = context.config

if config.config_file_name is not None:
    fileConfig(config.config_file_name)
logger = logging.getLogger('alembic.env')


def run_migrations_offline():
    """Offline mode: nothing is generated here either."""
    logger.info("migrations run elsewhere")


def run_migrations_online():
    """Online mode: a real one would shell out to ``alembic upgrade`` here."""
    logger.info("migrations run elsewhere")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
