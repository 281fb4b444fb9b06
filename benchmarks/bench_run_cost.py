"""What a run costs: the three figures of issue 11, from one command.

    .venv/bin/python benchmarks/bench_run_cost.py [--runs 7] [--status 200] [--run 100]
                                                 [--parallel 2] [--skip-fleet]
                                                 [--compare CHECKOUT] [--module]

1. A no-op ``softbee-runbook run upgrade_downgrade`` (a SQLite file already at head,
   ``DATABASE_URL`` pointing at it, the archive in a scratch folder through
   ``RUNBOOK_ARCHIVE_DIR``) as a ratio to ``flask db upgrade`` on the same file: ``--runs``
   pairs (default 7) taken back to back after one unmeasured pair, each pair's wall
   clock and CPU (user + sys of the command and its children: the kernel's included)
   printed, then the median of the pairs' ratios, wall and CPU, and the fastest run against
   the fastest ``flask db upgrade`` (on a shared machine, the least disturbed of each).
   ``--compare CHECKOUT``
   adds another checkout's run to every pair (before and after in the same minutes).
2. ``softbee-runbook fleet status`` over ``--status`` PostgreSQL databases (median of 3).
3. ``softbee-runbook fleet run upgrade_downgrade`` over ``--run`` databases at head with
   ``--parallel``, checking that the archive holds one passed run per target, one fleet
   record, and verifies.

Figures 2 and 3 come from ``bench_fleet.py`` (databases made from one template at head,
dropped at the end); they need PostgreSQL (TEST_DATABASE_URL's server, else
127.0.0.1:5432). Every figure is a wall clock as an operator sees it, Python start-up
included. Targets: 1 <= 2.0x flask db upgrade (issue 22; issue 11 had <= 2.0 s), 2 <= 3 s,
3 <= 100 s.
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


def timed(command: list[str], env: dict[str, str], cwd: Path = REPO) -> tuple[float, float]:
    """Wall clock and CPU (user + sys, children included) of one command; it must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n"
                         f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def no_op_run(runs: int, module: bool = False, other: Path | None = None) -> float:
    """Figure 1: a no-op upgrade_downgrade run beside flask db upgrade, as a ratio; returns it.

    ``runs`` pairs, each a run and a ``flask db upgrade`` back to back (their order
    rotates), after one unmeasured pair; the ratio is the median of the pairs' ratios, so
    a minute when the shared machine is slower weighs on both sides of a pair alike.
    ``module``: ``python -m softbee.runbook`` instead of the console script. ``other``:
    another checkout (its ``softbee`` on ``PYTHONPATH``), whose run joins each pair, so
    before and after are compared in the same minutes.
    """
    median = statistics.median
    with tempfile.TemporaryDirectory(prefix="softbee-bench-run-") as scratch:
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{scratch}/noop.sqlite3",
               "RUNBOOK_ARCHIVE_DIR": f"{scratch}/archive", "FLASK_APP": "softbee"}
        env.pop("SOFTBEE_RUNBOOKS_DIR", None)
        flask = [str(BIN / "flask"), "db", "upgrade"]
        module_run = [sys.executable, "-m", "softbee.runbook", "run", "upgrade_downgrade"]
        run = module_run if module else [str(BIN / "softbee-runbook"), "run",
                                         "upgrade_downgrade"]
        commands = {"run": (run, env, REPO), "flask db upgrade": (flask, env, REPO)}
        if other is not None:
            commands["other checkout's run"] = (
                module_run, {**env, "PYTHONPATH": str(other)}, other)
        timed(flask, env)  # the file, at head
        for command, command_env, cwd in commands.values():  # unmeasured: file cache, byte code
            timed(command, command_env, cwd)
        names = list(commands)
        rows: list[dict[str, tuple[float, float]]] = []
        for index in range(runs):
            row = {}
            for name in names[index % len(names):] + names[:index % len(names)]:
                row[name] = timed(*commands[name])
            rows.append(row)
            base = row["flask db upgrade"]
            print(f"  pair {index + 1}: " + ", ".join(
                f"{name} {wall:.2f} s wall / {cpu:.2f} s CPU"
                + ("" if name == "flask db upgrade" else
                   f" ({wall / base[0]:.2f}x wall, {cpu / base[1]:.2f}x CPU)")
                for name, (wall, cpu) in row.items()), flush=True)
    base_rows = [row["flask db upgrade"] for row in rows]
    print(f"flask db upgrade: median {median(w for w, _ in base_rows):.2f} s wall, "
          f"{median(c for _, c in base_rows):.2f} s CPU")
    ratio = 0.0
    for name in names:
        if name == "flask db upgrade":
            continue
        walls = [row[name][0] / row["flask db upgrade"][0] for row in rows]
        cpus = [row[name][1] / row["flask db upgrade"][1] for row in rows]
        print(f"no-op upgrade_downgrade {name} / flask db upgrade, same SQLite database at "
              f"head, median of {runs} pairs: {median(walls):.2f}x wall (target <= 2.0x), "
              f"{median(cpus):.2f}x CPU; the run {median(row[name][0] for row in rows):.2f} s "
              f"wall, {median(row[name][1] for row in rows):.2f} s CPU (the kernel's included)")
        ratio = ratio or median(walls)
        fastest = min(row[name][0] for row in rows)
        print(f"  fastest of {runs}: {fastest:.2f} s against flask db upgrade's fastest "
              f"{min(w for w, _ in base_rows):.2f} s: {fastest / min(w for w, _ in base_rows):.2f}x "
              "(the nearest thing to a quiet machine's ratio when the machine is shared)")
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7,
                        help="pairs (a no-op run, a flask db upgrade) to take the median of")
    parser.add_argument("--status", type=int, default=200, help="databases for fleet status")
    parser.add_argument("--run", type=int, default=100, help="databases for fleet run")
    parser.add_argument("--parallel", type=int, default=2, help="fleet run --parallel")
    parser.add_argument("--skip-fleet", action="store_true", help="only the no-op run")
    parser.add_argument("--compare", type=Path, metavar="CHECKOUT",
                        help="another checkout of this repository (e.g. main) whose run joins "
                        "each pair through PYTHONPATH, timed in the same minutes")
    parser.add_argument("--module", action="store_true",
                        help="time `python -m softbee.runbook` rather than the console script "
                        "(e.g. another checkout on PYTHONPATH)")
    args = parser.parse_args()

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, load average {load}")
    no_op_run(args.runs, args.module, args.compare)
    print(f"load average after the pairs: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
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
