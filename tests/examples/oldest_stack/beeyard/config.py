"""Beeyard's configurations: the default one migrates the database when the app starts."""


class Default:
    """Production-like: ``create_app()`` runs ``flask_migrate.upgrade()`` on start."""

    SQLALCHEMY_TRACK_MODIFICATIONS = False
    MIGRATE_ON_START = True


class Runbook(Default):
    """For the migration runbooks: load the app without moving the database."""

    MIGRATE_ON_START = False
