"""Benchmark: append cost and ``archive verify`` time on archives of 10, 1,000 and 10,000 runs.

Each archive is built through the real append code (``archive.append_record``),
with one synthetic notebook and html per run of an archived upgrade_downgrade
run's size (25 KB + 34 KB) and the one shared stylesheet, so verify hashes what
it would hash on a real archive. Printed per size: the median and 95th
percentile of 50 more appends, what reading the whole index (the old append)
would cost, the full verify, and ``verify --since`` the last day.

    .venv/bin/python benchmarks/bench_archive.py [--sizes 10 1000 10000] [--keep DIR]

The files are in the page cache when verify runs (they were just written), as
on a machine where runs land every few minutes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from softbee.runbook import archive
from softbee.runbook.archive import chain

NOTEBOOK_BYTES = 25_000
HTML_BYTES = 34_000
STYLESHEET_BYTES = 263_000
EXTRA_APPENDS = 50
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def build(directory: Path, runs: int) -> None:
    """An archive of ``runs`` synthetic runs, one a minute, appended by the real code."""
    stylesheet = b"/* shared */\n" + b"x" * STYLESHEET_BYTES
    (directory / "static").mkdir(parents=True, exist_ok=True)
    (directory / "static" / "notebook-bench.css").write_bytes(stylesheet)
    style_sha = hashlib.sha256(stylesheet).hexdigest()
    for number in range(runs):
        append(directory, number, style_sha)


def append(directory: Path, number: int, style_sha: str) -> float:
    """Write run ``number``'s two files, append its record; return the append's seconds."""
    started = T0 + dt.timedelta(minutes=number)
    day = directory / f"{started:%Y/%m/%d}"
    day.mkdir(parents=True, exist_ok=True)
    stem = f"{started:%Y%m%dT%H%M%SZ}_upgrade_downgrade_{number:012x}"
    notebook = f'{{"run": {number}}}'.encode() + b" " * NOTEBOOK_BYTES
    html = f"<!-- run {number} -->".encode() + b" " * HTML_BYTES
    (day / f"{stem}.ipynb").write_bytes(notebook)
    (day / f"{stem}.html").write_bytes(html)
    record = {
        "run_id": f"{number:012x}",
        "runbook": "upgrade_downgrade",
        "status": "passed",
        "started_at": started.isoformat().replace("+00:00", "Z"),
        "finished_at": (started + dt.timedelta(seconds=12)).isoformat().replace("+00:00", "Z"),
        "duration_s": 12.0,
        "parameters": {"database_url": "postgresql://app:***@db/softbee", "target": None},
        "database": {"dialect": "postgresql", "host": "db", "port": 5432, "database": "softbee"},
        "environment": "production",
        "revision_before": "7a6c1e3b8d07",
        "revision_after": "8b7d2f4c9e08",
        "row_counts": [{"table": t, "before": 1000, "after": 1000, "delta": 0, "note": ""}
                       for t in ("apiaries", "hives", "inspections", "treatments", "users")],
        "outcome": "upgrade 7a6c1e3b8d07 -> 8b7d2f4c9e08",
        "extra_facts": {"data_loss": [], "rehearsal": False},
        "error": None,
        "user": "deploy",
        "host": "runner-1",
        "project_dir": "/srv/softbee",
        "git_commit": "0" * 40,
        "notebook": f"{day.relative_to(directory).as_posix()}/{stem}.ipynb",
        "html": f"{day.relative_to(directory).as_posix()}/{stem}.html",
        "stylesheet": "static/notebook-bench.css",
        "notebook_sha256": hashlib.sha256(notebook).hexdigest(),
        "html_sha256": hashlib.sha256(html).hexdigest(),
        "stylesheet_sha256": style_sha,
    }
    begin = time.perf_counter()
    archive.append_record(directory, record)
    return time.perf_counter() - begin


def measure(root: Path, runs: int) -> dict[str, float]:
    """Build an archive of ``runs`` runs, then time appends, a whole-index read and verify."""
    directory = root / f"archive-{runs}"
    build(directory, runs)
    stylesheet = (directory / "static" / "notebook-bench.css").read_bytes()
    style_sha = hashlib.sha256(stylesheet).hexdigest()
    appends = sorted(append(directory, runs + n, style_sha) for n in range(EXTRA_APPENDS))
    total = runs + EXTRA_APPENDS
    lookups = []
    with open(directory / archive.INDEX_NAME, "rb") as index:
        for _ in range(EXTRA_APPENDS):
            begin = time.perf_counter()
            chain._chain_end_from_head(directory, index.fileno())
            lookups.append(time.perf_counter() - begin)
    begin = time.perf_counter()
    chain._chain_end((directory / archive.INDEX_NAME).read_bytes())
    whole_read = time.perf_counter() - begin
    begin = time.perf_counter()
    problems = archive.verify_archive(directory)
    verify = time.perf_counter() - begin
    assert problems == [], problems[:3]
    last_day = T0 + dt.timedelta(minutes=total - 1)
    since = last_day - dt.timedelta(hours=1)  # the last hour: 60 runs
    begin = time.perf_counter()
    assert archive.verify_archive(directory, since=since) == []
    verify_since = time.perf_counter() - begin
    return {
        "runs": total,
        "append_median_ms": statistics.median(appends) * 1000,
        "append_p95_ms": appends[int(len(appends) * 0.95) - 1] * 1000,
        "chain_end_ms": statistics.median(lookups) * 1000,
        "whole_index_read_ms": whole_read * 1000,
        "index_mb": (directory / archive.INDEX_NAME).stat().st_size / 1e6,
        "verify_s": verify,
        "verify_since_s": verify_since,
    }


def main() -> int:
    """Print one line per archive size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1_000, 10_000])
    parser.add_argument("--keep", metavar="DIR", help="build the archives in DIR and keep them")
    args = parser.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-archive-"))
    print(f"machine: {os.cpu_count()} cores (nproc), Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}")
    print(f"{'runs':>7} {'append median':>14} {'append p95':>11} {'find chain end':>15} "
          f"{'read whole index':>17} {'index':>8} {'verify':>8} {'verify --since':>15}")
    try:
        for size in args.sizes:
            r = measure(root, size)
            print(f"{r['runs']:>7} {r['append_median_ms']:>11.2f} ms {r['append_p95_ms']:>8.2f} ms "
                  f"{r['chain_end_ms']:>12.3f} ms {r['whole_index_read_ms']:>14.1f} ms "
                  f"{r['index_mb']:>5.1f} MB {r['verify_s']:>6.2f} s {r['verify_since_s']:>13.2f} s",
                  flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
