"""A fleet on Apache Airflow: one mapped task per target, waves in order, the same failure limit.

``pip install 'softbee[airflow]'``, then in a DAG file::

    from softbee.runbook.fleet.airflow_dag import fleet_dag

    dag = fleet_dag("softbee_fleet_upgrade", targets="/srv/proj/targets.yaml",
                    runbook="upgrade_downgrade", params={"target": "head"}, waves=True)

Shape of the DAG: ``wave_1`` (mapped over the wave's targets) -> ``gate_1`` -> ``wave_2``
-> ``gate_2`` ... -> ``fleet_record``. Each target task runs ``softbee-runbook run``
headless on its worker with the URL of the target's Airflow Connection (``conn_id``)
as ``DATABASE_URL`` (a target with binds: each bind's Connection, ``bind_conn_id``, as the
runbook's ``bind_urls``, on the run's standard input), archives into the shared
``RUNBOOK_ARCHIVE_DIR``, and leaves its outcome beside the archive
(``.fleet/<fleet id>/<target>.json``) for the gates; a failed run fails its task. A gate
fails (and the later waves do not start) once ``max_failures`` targets have failed.
``fleet_record`` runs whatever happened and appends the one fleet record linking the runs,
as ``softbee-runbook fleet run`` does.

Airflow is imported only by :func:`fleet_dag`; the pieces the tasks call
(:func:`target_task`, :func:`gate`, :func:`write_fleet_record`, :func:`connection_url`,
:func:`bind_connection_urls`)
are plain functions, tested without Airflow.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from softbee.runbook import archive
from softbee.runbook.fleet.fleet_run import (
    FAILED,
    FLEET_KIND,
    NOT_STARTED,
    PASSED,
    TargetRun,
    plan,
    run_target,
)
from softbee.runbook.fleet.targets import Target, load_targets

SPOOL = ".fleet"


class FailureLimitReached(RuntimeError):
    """A gate found ``max_failures`` failed targets: the later waves must not start."""


def connection_url(conn_type: str | None, uri: str, host: str | None = None) -> str:
    """The SQLAlchemy URL for an Airflow Connection (its ``get_uri()``; SQLite from its host)."""
    if (conn_type or "").lower() == "sqlite":
        return f"sqlite:///{host or ''}"  # host /srv/x.db gives sqlite:////srv/x.db
    return uri


def bind_connection_urls(bind_conn_ids: Mapping[str, str],
                         get_connection: Callable[[str], Any]) -> dict[str, str]:
    """Each bind's URL from its Airflow Connection (``bind_conn_id``): bind name to URL."""
    found = {}
    for bind, conn_id in bind_conn_ids.items():
        conn = get_connection(conn_id)
        found[bind] = connection_url(conn.conn_type, conn.get_uri(), conn.host)
    return found


def fleet_id_for(dag_id: str, run_id: str) -> str:
    """A fleet id that every task of one DAG run computes alike (12 hex digits)."""
    return hashlib.sha256(f"{dag_id}\0{run_id}".encode()).hexdigest()[:12]


def spool_dir(archive_dir: Path, fleet_id: str) -> Path:
    """Where a DAG run's target tasks leave their outcomes for the gates and the record."""
    return archive_dir / SPOOL / fleet_id


def target_task(
    runbook: str,
    target: Mapping[str, Any],
    url: str,
    *,
    params: Mapping[str, Any],
    archive_dir: Path,
    project_dir: Path,
    fleet_id: str,
    timeout_s: float = 3600.0,
    bind_urls: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run the runbook on one target, leave its outcome in the spool, and return it."""
    one = Target(name=str(target["name"]), wave=int(target.get("wave", 1)))
    result = run_target(runbook, one, url, texts={}, values=params, archive_dir=archive_dir,
                        cwd=project_dir, timeout_s=timeout_s, stage=str(target.get("stage", "")),
                        bind_urls=bind_urls)
    outcome = asdict(result)
    spool = spool_dir(archive_dir, fleet_id)
    spool.mkdir(parents=True, exist_ok=True)
    (spool / f"{one.name}.json").write_text(json.dumps(outcome))
    return outcome


def outcomes(archive_dir: Path, fleet_id: str) -> dict[str, dict[str, Any]]:
    """The outcomes the target tasks of a fleet left so far, by target name."""
    spool = spool_dir(archive_dir, fleet_id)
    found = {}
    for path in sorted(spool.glob("*.json")) if spool.is_dir() else []:
        data = json.loads(path.read_text())
        found[data["name"]] = data
    return found


def gate(archive_dir: Path, fleet_id: str, max_failures: int) -> int:
    """How many targets failed so far; raise :class:`FailureLimitReached` at the limit."""
    failed = sorted(n for n, o in outcomes(archive_dir, fleet_id).items() if o["status"] == FAILED)
    if len(failed) >= max_failures:
        raise FailureLimitReached(
            f"{len(failed)} target(s) failed ({', '.join(failed)}), limit {max_failures}: "
            "the later waves do not start"
        )
    return len(failed)


def write_fleet_record(
    *,
    archive_dir: Path,
    fleet_id: str,
    runbook: str,
    stages: Sequence[tuple[str, Sequence[Target]]],
    params: Mapping[str, Any],
    max_failures: int,
    waves: bool,
    targets_file: str,
    dag_id: str,
    run_id: str,
) -> dict[str, Any]:
    """Append the fleet record (every target: passed, failed or not started), clear the spool."""
    from softbee.runbook.util.redact import Redactor

    found = outcomes(archive_dir, fleet_id)
    rows = []
    for label, members in stages:
        for target in members:
            row = found.get(target.name) or asdict(
                TargetRun(target.name, target.wave, label, binds=target.binds))
            row["stage"] = label
            rows.append(row)
    counts = {s: sum(r["status"] == s for r in rows) for s in (PASSED, FAILED, NOT_STARTED)}
    status = PASSED if counts[PASSED] == len(rows) else (
        "stopped" if counts[NOT_STARTED] else FAILED)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    record = {
        "kind": FLEET_KIND,
        "run_id": fleet_id,
        "fleet_id": fleet_id,
        "runbook": runbook,
        "status": status,
        "stopped": (f"failure limit reached: {counts[FAILED]} failed (max_failures "
                    f"{max_failures})" if counts[NOT_STARTED] else None),
        "started_at": now,
        "finished_at": now,
        "parameters": Redactor.for_run(dict(params)).parameters(dict(params)),
        "max_failures": max_failures,
        "waves": waves,
        "targets_file": targets_file,
        "orchestrator": {"name": "airflow", "dag_id": dag_id, "run_id": run_id},
        "counts": counts,
        "targets": rows,
        "host": socket.gethostname(),
    }
    record = archive.append_record(archive_dir, record)
    shutil.rmtree(spool_dir(archive_dir, fleet_id), ignore_errors=True)
    return record


def fleet_dag(
    dag_id: str,
    *,
    targets: str | os.PathLike[str],
    runbook: str,
    params: Mapping[str, Any] | None = None,
    waves: bool = True,
    max_failures: int = 1,
    archive_dir: str | os.PathLike[str] | None = None,
    project_dir: str | os.PathLike[str] | None = None,
    target_timeout_s: float = 3600.0,
    **dag_kwargs: Any,
) -> Any:
    """Build the Airflow DAG running ``runbook`` on every target of ``targets`` (needs Airflow 3)."""
    try:
        from airflow.sdk import DAG, get_current_context, task
    except ImportError:
        from softbee.runbook.errors import ConfigError

        raise ConfigError("Apache Airflow 3 is not installed here: pip install 'softbee[airflow]'"
                          ) from None

    fleet = load_targets(targets, need="conn_id")
    stages = [(s.label, list(s.targets)) for s in plan(fleet, waves=waves)]
    conn_ids = {t.name: t.conn_id for t in fleet.targets}
    bind_conn_ids = {t.name: dict(t.bind_conn_id) for t in fleet.targets}
    params = dict(params or {})
    for secret in ("database_url", "bind_urls"):
        if secret in params:
            from softbee.runbook.errors import ConfigError

            raise ConfigError(f"{secret} comes from each target's Connections (conn_id, "
                              "bind_conn_id): do not pass it in params")
    archive_path = archive.archive_dir(archive_dir or os.environ.get(archive.ARCHIVE_DIR_ENV))
    project = Path(project_dir or os.environ.get("SOFTBEE_PROJECT_ROOT") or os.getcwd())
    dag_kwargs.setdefault("schedule", None)
    dag_kwargs.setdefault("start_date", dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    dag_kwargs.setdefault("catchup", False)
    dag_kwargs.setdefault("max_active_runs", 1)

    def _fleet_id() -> str:
        context = get_current_context()
        return fleet_id_for(dag_id, str(context["run_id"]))

    @task(retries=0, map_index_template="{{ target_name }}")
    def run_one(target: dict[str, Any]) -> dict[str, Any]:
        from airflow.exceptions import AirflowFailException

        get_current_context()["target_name"] = target["name"]  # type: ignore[typeddict-unknown-key]
        conn = _connection(conn_ids[target["name"]])
        outcome = target_task(runbook, target, connection_url(conn.conn_type, conn.get_uri(),
                                                              conn.host),
                              params=params, archive_dir=archive_path, project_dir=project,
                              fleet_id=_fleet_id(), timeout_s=target_timeout_s,
                              bind_urls=bind_connection_urls(bind_conn_ids[target["name"]],
                                                             _connection) or None)
        if outcome["status"] != PASSED:
            raise AirflowFailException(f"{target['name']}: {outcome.get('error')} "
                                       f"(see {outcome.get('html')})")
        return outcome

    @task(trigger_rule="all_done", retries=0)
    def check(limit: int) -> int:
        from airflow.exceptions import AirflowFailException

        try:
            return gate(archive_path, _fleet_id(), limit)
        except FailureLimitReached as exc:
            raise AirflowFailException(str(exc)) from None

    @task(trigger_rule="all_done", retries=0)
    def fleet_record() -> str:
        from airflow.exceptions import AirflowFailException

        context = get_current_context()
        record = write_fleet_record(
            archive_dir=archive_path, fleet_id=_fleet_id(), runbook=runbook, stages=stages,
            params=params, max_failures=max_failures, waves=waves, targets_file=str(fleet.path),
            dag_id=dag_id, run_id=str(context["run_id"]),
        )
        summary = f"fleet {record['fleet_id']}: {record['status']} {record['counts']}"
        if record["status"] != PASSED:  # the DAG run's state follows this last task
            raise AirflowFailException(summary)
        return summary

    with DAG(dag_id, **dag_kwargs) as dag:
        previous = None
        for number, (label, members) in enumerate(stages, start=1):
            wave = run_one.override(task_id=f"wave_{number}").expand(
                target=[{"name": t.name, "wave": t.wave, "stage": label} for t in members])
            gate_task = check.override(task_id=f"gate_{number}")(max_failures)
            if previous is not None:
                previous >> wave
            wave >> gate_task
            previous = gate_task
        record_task = fleet_record()
        if previous is not None:
            previous >> record_task
    return dag


def _connection(conn_id: str) -> Any:
    """The Airflow Connection ``conn_id`` (Task SDK first, the classic hook as a fallback)."""
    try:
        from airflow.sdk import Connection

        return Connection.get(conn_id)
    except ImportError:  # pragma: no cover - Airflow 2
        from airflow.hooks.base import BaseHook

        return BaseHook.get_connection(conn_id)
