"""Load any Flask-Migrate project: its app, its migrations and its database.

Alembic's config is built through Flask-Migrate (``Migrate.get_config``) so the
project's ``env.py`` and its configure arguments are honoured, but every command
is called through ``alembic.command`` directly: exceptions reach the caller
instead of Flask-Migrate's ``sys.exit(1)``.

Package ``softbee.runbook.project``: a loaded project (``core.Project``), loading it
(``loading.load_project``) and its engine (``engines``), all importable from here; its
sessions and their timeouts (``sessions``), routing its ``env.py`` to the runbook's
connection (``routing``), what differs between databases (``dialects``) and the binds of a
multi-database app (``binds``). Imports only :mod:`~softbee.runbook.util`;
never ``online``, ``review``, ``engine``, ``run``, ``archive`` or ``fleet``.
"""

from __future__ import annotations

from softbee.runbook.project import routing as routing
from softbee.runbook.project.binds import bind_projects as bind_projects
from softbee.runbook.project.core import Project as Project
from softbee.runbook.project.dialects import DEFAULT_LOCK_TIMEOUT_MS as DEFAULT_LOCK_TIMEOUT_MS
from softbee.runbook.project.engines import APPLICATION_NAME as APPLICATION_NAME
from softbee.runbook.project.engines import (
    describe_connection_error as describe_connection_error,
)
from softbee.runbook.project.engines import make_engine as make_engine
from softbee.runbook.project.engines import quiet_alembic as quiet_alembic
from softbee.runbook.project.loading import NO_SWITCH_ADVICE as NO_SWITCH_ADVICE
from softbee.runbook.project.loading import (
    RECORDED_REVISION_LOCK_TIMEOUT_MS as RECORDED_REVISION_LOCK_TIMEOUT_MS,
)
from softbee.runbook.project.loading import import_app as import_app
from softbee.runbook.project.loading import load_project as load_project
