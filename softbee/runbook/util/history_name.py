"""The name of the runbooks' history table, and how to tell it from the project's own tables.

The history table (``softbee.runbook.history``) lives in every migrated database beside
``alembic_version``. It is the runbooks' record, not the project's schema: row counts, the
data-loss guard, schema comparisons and drift leave it out, as they leave out Alembic's
version table and the online phases' record. Its name is ``softbee_runbook_history`` unless
the app's config (or the environment) sets ``SOFTBEE_HISTORY_TABLE``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

HISTORY_TABLE = "softbee_runbook_history"
#: The app-config key (or environment variable) that renames the history table.
HISTORY_TABLE_SETTING = "SOFTBEE_HISTORY_TABLE"

_configured: set[str] = set()  # every name a loaded project configured, in this process


def history_table_name(config: Mapping[str, Any] | None = None) -> str:
    """The history table's name: ``config``'s setting, else the environment's, else the default."""
    name = str((config or {}).get(HISTORY_TABLE_SETTING) or os.environ.get(HISTORY_TABLE_SETTING)
               or HISTORY_TABLE)
    _configured.add(name)
    return name


def is_history_table(name: str | None) -> bool:
    """Whether ``name`` is the history table (the default name, or one configured here)."""
    return bool(name) and (name == HISTORY_TABLE or name in _configured
                           or name == os.environ.get(HISTORY_TABLE_SETTING))

#: The environment variables a run's kernel is started with (``run.execute.start_kernel``):
#: the run id its archived record will carry, and the runbook's name. A notebook opened in
#: JupyterLab has neither: its history rows carry no run id.
RUN_ID_ENV = "SOFTBEE_RUN_ID"
RUNBOOK_ENV = "SOFTBEE_RUNBOOK"


def skip_runbook_tables(include_name: Any = None) -> Any:
    """An Alembic ``include_name`` that leaves out the runbooks' own tables, then asks ``include_name``.

    Autogenerate would otherwise write ``op.drop_table`` for the history table (it is in no
    model). The runbooks apply it to every ``configure`` they route; a project's ``env.py``
    passes ``include_name=skip_runbook_tables()`` so that a bare ``flask db migrate`` does too.
    """
    def include(name: str | None, type_: str, parent_names: Any) -> bool:
        if type_ == "table" and (is_history_table(name) or name == PHASE_TABLE_NAME):
            return False
        return bool(include_name(name, type_, parent_names)) if include_name else True

    include.softbee_skips_runbook_tables = True  # type: ignore[attr-defined]
    return include


#: The online phases' record (``online.phases.PHASE_TABLE``; util imports nothing above it).
PHASE_TABLE_NAME = "softbee_runbook_phases"
