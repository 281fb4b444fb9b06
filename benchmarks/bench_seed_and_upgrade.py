"""Print how long seeding and a guarded upgrade take at a realistic size (not a test).

    .venv/bin/python benchmarks/bench_seed_and_upgrade.py [ROWS]

Seeds ROWS inspections (default 100_000; users, apiaries, hives and treatments scale
with it) at the revision before the full_name backfill, then upgrades to head through
the runbook library (lock, transaction, exact counts, data-loss check), on a temporary
SQLite file and, when reachable, a temporary PostgreSQL database.
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from softbee.runbook.engine.migrate import run_migration
from softbee.runbook.project import load_project
from softbee.seed import seed_database

BEFORE_BACKFILL = "5e4a9c1f6b05"
PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


def measure(url: str, rows: int) -> None:
    """Seed, then upgrade to head twice (exact and estimate counts), printing seconds."""
    project = load_project(database_url=url)
    run_migration(project, "upgrade", BEFORE_BACKFILL)
    started = time.perf_counter()
    added = seed_database(project.engine, rows=rows, seed=1)
    print(f"  seed {sum(added.values()):>8,} rows        {time.perf_counter() - started:7.2f} s")
    for mode in ("exact", "estimate"):
        started = time.perf_counter()
        result = run_migration(project, "upgrade", "head", count_mode=mode, rehearse=True)
        steps = ", ".join(f"{s.revision[:6]} {s.seconds:.2f}s" for s in result.steps)
        print(f"  rehearsed upgrade ({mode:8}) {time.perf_counter() - started:7.2f} s  [{steps}]")
    project.engine.dispose()


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as folder:
        print(f"SQLite, {rows:,} inspections")
        measure(f"sqlite:///{Path(folder) / 'bench.sqlite3'}", rows)
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"softbee_bench_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError:
        print("PostgreSQL not reachable: skipped")
        return
    try:
        print(f"PostgreSQL, {rows:,} inspections")
        measure(PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", rows)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
