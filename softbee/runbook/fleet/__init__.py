"""Many databases at once: targets files, status, fleet runs, their report, Airflow.

Owns: the targets file (``targets``; a multi-database target's other binds: ``binds``),
every target's revision, per bind (``status``, placed on the scripts' graph: ``graph``), a
runbook run on every target with canary and waves (``fleet_run``, in ``worker`` processes; one
target's run: ``target_run``), the fleet record (``records``), the fleet's report
(``report``), the ``fleet`` commands (``fleet_cli``) and the Airflow DAG factory
(``airflow_dag``).
Imports: :mod:`~softbee.runbook.util`, :mod:`~softbee.runbook.archive` and
:mod:`~softbee.runbook.run`; nothing imports it but :mod:`softbee.runbook.cli`.
"""

from __future__ import annotations

from typing import Any

_STATUS = ("AT_HEAD", "BEHIND", "AHEAD", "UNKNOWN", "SEVERAL", "UNREACHABLE", "STATE_ORDER",
           "TargetStatus", "BindStatus", "FleetStatus", "History", "fleet_status", "read_revisions",
           "status_rows", "unreachable", "script_directory")


def __getattr__(name: str) -> Any:
    """The names of :mod:`.status`, where ``softbee.runbook.fleet`` (a module) kept them."""
    if name in _STATUS:
        from softbee.runbook.fleet import status

        return getattr(status, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
