"""CI proof for the Airflow fleet: `airflow dags test` the example DAG on three local databases.

Run by `make test-airflow` with the Airflow venv's Python. Two SQLite files and one
PostgreSQL database (on TEST_DATABASE_URL's server, else 127.0.0.1:5432) start empty;
after the DAG run each must record the scripts' head, and the archive must hold three
passed runs, one fleet record linking them, and verify clean. Exit 0 on success, 1
with the reason otherwise. Everything it creates is removed (the PostgreSQL database
dropped) whatever happens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "softbee_fleet_upgrade"
ADMIN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
COMMAND_TIMEOUT_S = 900


def admin_url() -> sa.engine.URL:
    url = make_url(ADMIN.replace("postgres://", "postgresql://", 1))
    return url.set(drivername="postgresql+psycopg2", database="postgres")


def revision(url: str) -> str | None:
    engine = sa.create_engine(url.replace("postgres://", "postgresql://", 1))
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def main() -> int:
    head = ScriptDirectory(str(REPO / "migrations")).get_current_head()
    pg_name = f"softbee_airflow_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{pg_name}"'))
    try:
        with tempfile.TemporaryDirectory(prefix="softbee-airflow-") as scratch:
            work = Path(scratch)
            pg_url = admin_url().set(database=pg_name).render_as_string(hide_password=False)
            urls = {
                "eu-1": f"sqlite:///{work / 'eu-1.sqlite3'}",
                "eu-2": f"sqlite:///{work / 'eu-2.sqlite3'}",
                "us-1": pg_url,
            }
            archive_dir = work / "archive"
            env = {
                **os.environ,
                "AIRFLOW_HOME": str(work / "airflow"),
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "examples" / "airflow"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                "RUNBOOK_ARCHIVE_DIR": str(archive_dir),
                "SOFTBEE_PROJECT_ROOT": str(REPO),
                "AIRFLOW_CONN_SOFTBEE_EU_1": json.dumps(
                    {"conn_type": "sqlite", "host": str(work / "eu-1.sqlite3")}),
                "AIRFLOW_CONN_SOFTBEE_EU_2": json.dumps(
                    {"conn_type": "sqlite", "host": str(work / "eu-2.sqlite3")}),
                "AIRFLOW_CONN_SOFTBEE_US_1": pg_url.replace("postgresql+psycopg2://", "postgres://"),
            }
            airflow = [str(Path(sys.executable).with_name("airflow"))]
            for step in (["db", "migrate"], ["dags", "test", DAG_ID]):
                done = subprocess.run([*airflow, *step], env=env, cwd=REPO, capture_output=True,
                                      text=True, timeout=COMMAND_TIMEOUT_S)
                if done.returncode != 0:
                    print(done.stdout[-4000:], done.stderr[-4000:], sep="\n")
                    print(f"airflow {' '.join(step)} exited {done.returncode}")
                    return 1
            problems = []
            for name, url in urls.items():
                found = revision(url)
                if found != head:
                    problems.append(f"{name}: at {found}, not head {head}")
            from softbee.runbook.archive import read_index, verify_archive

            records = read_index(archive_dir)
            runs = [r for r in records if r.get("kind") != "fleet"]
            fleets = [r for r in records if r.get("kind") == "fleet"]
            if len(runs) != 3 or any(r["status"] != "passed" for r in runs):
                problems.append(f"archive: {len(runs)} run(s), statuses "
                                f"{[r['status'] for r in runs]}; expected 3 passed")
            if len(fleets) != 1:
                problems.append(f"archive: {len(fleets)} fleet record(s), expected 1")
            elif {t["run_id"] for t in fleets[0]["targets"]} != {r["run_id"] for r in runs}:
                problems.append("the fleet record does not link the three runs")
            problems += [str(p) for p in verify_archive(archive_dir)]
            for problem in problems:
                print(f"airflow fleet check: {problem}")
            if problems:
                return 1
            print(f"airflow fleet check: OK: 3 databases at {head}, 3 runs and fleet "
                  f"{fleets[0]['fleet_id']} archived, archive verifies")
            return 0
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
