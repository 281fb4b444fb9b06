"""What a run costs: the three figures of issue 11, from one command.

    .venv/bin/python benchmarks/bench_run_cost.py [--runs 5] [--status 200] [--run 100]
                                                 [--parallel 2] [--skip-fleet]

1. A no-op ``softbee-runbook run upgrade_downgrade`` (a SQLite file already at head,
   ``DATABASE_URL`` pointing at it, the archive in a scratch folder through
   ``RUNBOOK_ARCHIVE_DIR``): wall clock, median of ``--runs`` after one unmeasured run,
   with ``flask db upgrade`` on the same file beside it, and the CPU both take
   (user + sys of the command and its children: the kernel's included).
2. ``softbee-runbook fleet status`` over ``--status`` PostgreSQL databases (median of 3).
3. ``softbee-runbook fleet run upgrade_downgrade`` over ``--run`` databases at head with
   ``--parallel``, checking that the archive holds one passed run per target, one fleet
   record, and verifies.

Figures 2 and 3 come from ``bench_fleet.py`` (databases made from one template at head,
dropped at the end); they need PostgreSQL (TEST_DATABASE_URL's server, else
127.0.0.1:5432). Every figure is a wall clock as an operator sees it, Python start-up
included. Targets: 1 <= 2.0 s, 2 <= 3 s, 3 <= 100 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall clock and CPU (user + sys, children included) of one command; it must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n"
                         f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def no_op_run(runs: int, module: bool = False) -> None:
    """Figure 1: a no-op upgrade_downgrade run beside flask db upgrade.

    ``module``: ``python -m softbee.runbook`` instead of the console script (to time
    another checkout through PYTHONPATH, whose entry point may differ).
    """
    with tempfile.TemporaryDirectory(prefix="softbee-bench-run-") as scratch:
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{scratch}/noop.sqlite3",
               "RUNBOOK_ARCHIVE_DIR": f"{scratch}/archive", "FLASK_APP": "softbee"}
        env.pop("SOFTBEE_RUNBOOKS_DIR", None)
        flask = [str(BIN / "flask"), "db", "upgrade"]
        run = ([sys.executable, "-m", "softbee.runbook"] if module
               else [str(BIN / "softbee-runbook")]) + ["run", "upgrade_downgrade"]
        timed(flask, env)  # the file, at head
        timed(run, env)  # unmeasured: the OS's file cache, the kernel's byte code
        runbook, baseline = [], []
        for _ in range(runs):
            runbook.append(timed(run, env))
            baseline.append(timed(flask, env))
        wall = statistics.median(w for w, _ in runbook)
        flask_wall = statistics.median(w for w, _ in baseline)
        print(f"no-op upgrade_downgrade run: median {wall:.2f} s of {runs} (target <= 2.0 s); "
              f"flask db upgrade on the same database: {flask_wall:.2f} s "
              f"({wall / flask_wall:.1f}x)")
        print(f"  runs: {', '.join(f'{w:.2f}' for w, _ in runbook)} s wall; CPU median "
              f"{statistics.median(c for _, c in runbook):.2f} s (flask "
              f"{statistics.median(c for _, c in baseline):.2f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="no-op runs to take the median of")
    parser.add_argument("--status", type=int, default=200, help="databases for fleet status")
    parser.add_argument("--run", type=int, default=100, help="databases for fleet run")
    parser.add_argument("--parallel", type=int, default=2, help="fleet run --parallel")
    parser.add_argument("--skip-fleet", action="store_true", help="only the no-op run")
    parser.add_argument("--module", action="store_true",
                        help="time `python -m softbee.runbook` rather than the console script "
                        "(e.g. another checkout on PYTHONPATH)")
    args = parser.parse_args()

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, load average {load}")
    no_op_run(args.runs, args.module)
    if args.skip_fleet:
        return 0
    command = [sys.executable, str(REPO / "benchmarks" / "bench_fleet.py"),
               "--status", str(args.status), "--run", str(args.run),
               "--parallel", str(args.parallel)]
    code = subprocess.run(command, cwd=REPO, check=False).returncode
    print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return code


if __name__ == "__main__":
    sys.exit(main())
