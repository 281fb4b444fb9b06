"""Fleet timings: `fleet status` over 200 PostgreSQL databases, `fleet run` over 100 at head.

    .venv/bin/python benchmarks/bench_fleet.py [--status N] [--run N] [--parallel P] [--skip-run]

(``benchmarks/bench_run_cost.py`` runs this after its no-op run figure: all three at once.)

Creates the databases from one template migrated to head (CREATE DATABASE ... TEMPLATE),
times the CLI as an operator runs it (wall clock, Python start-up included), prints the
figures, and drops every database it made. Needs PostgreSQL (TEST_DATABASE_URL's
server, else 127.0.0.1:5432). Targets: status <= 3 s; run <= 100 s (issue 11).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ADMIN = make_url(os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
                 .replace("postgres://", "postgresql://", 1)).set(
    drivername="postgresql+psycopg2", database="postgres")


def make_databases(prefix: str, count: int) -> list[str]:
    """A template at head, then ``count`` copies of it; returns their names (template first)."""
    from softbee.runbook.engine.migrate import run_migration
    from softbee.runbook.project import load_project

    admin = sa.create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    template = f"{prefix}_tmpl"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{template}"'))
    project = load_project(database_url=ADMIN.set(database=template).render_as_string(False),
                           migrations_dir=str(REPO / "migrations"))
    run_migration(project, "upgrade", "head")
    project.engine.dispose()
    names = [f"{prefix}_{n:03d}" for n in range(count)]
    with admin.connect() as conn:
        for name in names:
            conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    admin.dispose()
    return [template, *names]


def drop_databases(names: list[str]) -> None:
    admin = sa.create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in names:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def targets_file(folder: Path, names: list[str], env: dict[str, str]) -> Path:
    lines = ["targets:"]
    for number, name in enumerate(names):
        variable = f"BENCH_FLEET_{number}_URL"
        env[variable] = ADMIN.set(database=name).render_as_string(hide_password=False)
        lines.append(f"  - {{name: {name}, url_env: {variable}, wave: 1}}")
    path = folder / f"targets-{len(names)}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def timed(command: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    began = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    return time.perf_counter() - began, done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--status", type=int, default=200, help="databases for fleet status")
    parser.add_argument("--run", type=int, default=100, help="databases for fleet run")
    parser.add_argument("--parallel", type=int, default=2, help="fleet run --parallel")
    parser.add_argument("--skip-run", action="store_true", help="only time fleet status")
    args = parser.parse_args()

    prefix = f"softbee_bench_{uuid.uuid4().hex[:6]}"
    cli = [sys.executable, "-m", "softbee.runbook"]
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}")
    made: list[str] = []
    try:
        began = time.perf_counter()
        made = make_databases(prefix, max(args.status, args.run))
        print(f"set-up: {len(made) - 1} databases at head in {time.perf_counter() - began:.1f} s")
        with tempfile.TemporaryDirectory(prefix="softbee-bench-fleet-") as scratch:
            env = dict(os.environ)
            status_file = targets_file(Path(scratch), made[1:args.status + 1], env)
            times = []
            for _ in range(3):
                seconds, done = timed([*cli, "fleet", "status", str(status_file)], env)
                times.append(seconds)
                if done.returncode != 0:
                    print(done.stdout[-2000:], done.stderr[-2000:])
                    return 1
            print(f"fleet status over {args.status} PostgreSQL databases: "
                  f"median {sorted(times)[1]:.2f} s of 3 (target <= 3 s); "
                  f"last line: {done.stdout.strip().splitlines()[-1]}")
            if args.skip_run:
                return 0
            run_file = targets_file(Path(scratch), made[1:args.run + 1], env)
            archive_dir = Path(scratch) / "archive"
            seconds, done = timed([*cli, "fleet", "run", "upgrade_downgrade", str(run_file),
                                   "--parallel", str(args.parallel), "--max-failures", "1",
                                   "--archive-dir", str(archive_dir)], env)
            from softbee.runbook.archive import read_index, verify_archive

            records = read_index(archive_dir)
            runs = [r for r in records if r.get("kind") != "fleet"]
            fleets = [r for r in records if r.get("kind") == "fleet"]
            passed = sum(r["status"] == "passed" for r in runs)
            problems = verify_archive(archive_dir)
            complete = (len(runs) == passed == args.run and len(fleets) == 1 and not problems)
            print(f"fleet run upgrade_downgrade over {args.run} databases at head, --parallel "
                  f"{args.parallel}: {seconds:.1f} s ({seconds / max(1, len(runs)):.2f} s per "
                  f"target; target <= 100 s), exit {done.returncode}")
            print(f"  archive: {len(runs)} runs ({passed} passed), {len(fleets)} fleet record, "
                  f"verify: {len(problems)} problem(s) -> "
                  f"{'every run archived' if complete else 'INCOMPLETE'}")
            if done.returncode != 0 or not complete:
                failed = [line for line in done.stdout.splitlines() if " failed " in line]
                print(*failed[:10], done.stderr[-1500:], *problems[:10], sep="\n")
                for record in runs:
                    if record["status"] != "passed":
                        print(f"  {record['run_id']}: {record.get('error')}")
                return done.returncode or 1
            return 0
    finally:
        drop_databases(made or [f"{prefix}_tmpl"])


if __name__ == "__main__":
    sys.exit(main())
