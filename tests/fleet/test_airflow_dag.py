"""airflow_dag: the pieces the Airflow tasks call, tested without Airflow.

The DAG itself runs under `airflow dags test` in `make test-airflow` (its own venv).
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict
from pathlib import Path

import pytest

from softbee.runbook.archive import read_index, verify_archive
from softbee.runbook.fleet.airflow_dag import (
    FailureLimitReached,
    connection_url,
    fleet_dag,
    fleet_id_for,
    gate,
    spool_dir,
    write_fleet_record,
)
from softbee.runbook.fleet.fleet_run import FAILED, NOT_STARTED, PASSED, TargetRun, plan
from softbee.runbook.fleet.targets import load_targets
from tests.helpers import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "airflow"


def leave(archive_dir: Path, fleet_id: str, name: str, status: str, wave: int = 1) -> None:
    """What a target task leaves for the gates."""
    spool = spool_dir(archive_dir, fleet_id)
    spool.mkdir(parents=True, exist_ok=True)
    run = TargetRun(name, wave, f"wave {wave}", status=status, run_id=f"{name:0<12}"[:12])
    import json

    (spool / f"{name}.json").write_text(json.dumps(asdict(run)))


def test_the_example_targets_file_names_a_connection_for_every_target():
    fleet = load_targets(EXAMPLE / "fleet_targets.yaml", environ={}, need="conn_id")
    assert [(t.name, t.conn_id, t.wave) for t in fleet.targets] == [
        ("eu-1", "softbee_eu_1", 1), ("eu-2", "softbee_eu_2", 2), ("us-1", "softbee_us_1", 2)]


def test_connection_urls_for_postgresql_and_sqlite():
    assert connection_url("postgres", "postgres://u:p@h:5432/db") == "postgres://u:p@h:5432/db"
    assert connection_url("sqlite", "sqlite://ignored", "/srv/eu-1.sqlite3") == (
        "sqlite:////srv/eu-1.sqlite3")


def test_every_task_of_a_dag_run_computes_the_same_fleet_id():
    assert fleet_id_for("d", "manual__1") == fleet_id_for("d", "manual__1")
    assert fleet_id_for("d", "manual__1") != fleet_id_for("d", "manual__2")


def test_the_gate_passes_under_the_limit_and_stops_at_it(tmp_path):
    leave(tmp_path, "f1", "a", PASSED)
    leave(tmp_path, "f1", "b", FAILED)
    assert gate(tmp_path, "f1", max_failures=2) == 1
    with pytest.raises(FailureLimitReached, match=r"1 target\(s\) failed \(b\), limit 1"):
        gate(tmp_path, "f1", max_failures=1)


def test_the_fleet_record_names_what_did_not_start_and_clears_the_spool(tmp_path):
    path = tmp_path / "targets.yaml"
    path.write_text("targets:\n  - {name: a, conn_id: a_db, wave: 1}\n"
                    "  - {name: b, conn_id: b_db, wave: 2}\n")
    fleet = load_targets(path, need="conn_id")
    leave(tmp_path, "f2", "a", FAILED)
    record = write_fleet_record(
        archive_dir=tmp_path, fleet_id="f2", runbook="upgrade_downgrade",
        stages=[(s.label, list(s.targets)) for s in plan(fleet, waves=True)],
        params={"target": "head"}, max_failures=1, waves=True, targets_file=str(path),
        dag_id="d", run_id="manual__1")
    assert record["status"] == "stopped"
    assert [(t["name"], t["status"]) for t in record["targets"]] == [
        ("a", FAILED), ("b", NOT_STARTED)]
    assert read_index(tmp_path)[-1]["orchestrator"] == {
        "name": "airflow", "dag_id": "d", "run_id": "manual__1"}
    assert not spool_dir(tmp_path, "f2").exists()
    assert verify_archive(tmp_path) == []


@pytest.mark.skipif(importlib.util.find_spec("airflow") is not None,
                    reason="Airflow is installed: make test-airflow runs the DAG")
def test_without_airflow_the_factory_says_so():
    from softbee.runbook.errors import ConfigError

    with pytest.raises(ConfigError, match=r"pip install 'softbee\[airflow\]'"):
        fleet_dag("d", targets=EXAMPLE / "fleet_targets.yaml", runbook="upgrade_downgrade")
