"""Example: upgrade every Soft-Bee database of a fleet to head, wave by wave, on Airflow.

Put this file in the DAGs folder of a deployment where ``softbee[airflow]`` is installed
on every worker, the project checkout (its ``migrations/``) is at the same path on each,
and ``RUNBOOK_ARCHIVE_DIR`` is shared storage. Each target's URL comes from the Airflow
Connection named by its ``conn_id`` in the targets file (``AIRFLOW_CONN_<ID>`` or the
metadata database); the file itself holds no URL and no password.

    airflow dags test softbee_fleet_upgrade
"""

from __future__ import annotations

import os
from pathlib import Path

from softbee.runbook.fleet.airflow_dag import fleet_dag

HERE = Path(__file__).resolve().parent

dag = fleet_dag(
    "softbee_fleet_upgrade",
    targets=os.environ.get("SOFTBEE_FLEET_TARGETS", str(HERE / "fleet_targets.yaml")),
    runbook="upgrade_downgrade",
    params={"target": "head"},
    waves=True,
    max_failures=1,
    project_dir=os.environ.get("SOFTBEE_PROJECT_ROOT", str(HERE.parent.parent)),
    tags=["softbee", "fleet"],
)
