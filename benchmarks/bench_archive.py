"""Benchmark: append cost, ``archive verify`` and the auditors' page update, by archive size.

Each archive is built through the real append code (``archive.append_record``),
with one synthetic notebook and html per run of an archived upgrade_downgrade
run's size (25 KB + 34 KB) and the one shared stylesheet, so verify hashes what
it would hash on a real archive. Printed per size: the median and 95th
percentile of 50 more appends, what reading the whole index (the old append)
would cost, the full verify, and ``verify --since`` the last day.

    .venv/bin/python benchmarks/bench_archive.py [--sizes 10 1000 10000] [--keep DIR]
    .venv/bin/python benchmarks/bench_archive.py --only page [--page-sizes 100 10000 100000]

The files are in the page cache when verify runs (they were just written), as
on a machine where runs land every few minutes.

The page part (``--only page``) builds indexes of 100, 10,000 and 100,000 records of
the same shape, written in one go with the chain's own hashing (``chain_hash``,
``canonical_json``: the format ``append_record`` writes, minutes faster than 100,000
fsynced appends) and without the runs' files (the page never reads them). It then
rebuilds the pages in full (``archive html``), and times 20 more runs' page updates,
each after one ``append_record``: the median and 95th percentile, what one update read
of the index and wrote, and the size of ``index.html`` and the newest page.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
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
PAGE_UPDATES = 20
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
    record = make_record(directory, number, style_sha)
    begin = time.perf_counter()
    archive.append_record(directory, record)
    return time.perf_counter() - begin


def make_record(directory: Path, number: int, style_sha: str, files: bool = True) -> dict:
    """Run ``number``'s record (one failed run in 50), with its two files written if ``files``."""
    started = T0 + dt.timedelta(minutes=number)
    day = directory / f"{started:%Y/%m/%d}"
    stem = f"{started:%Y%m%dT%H%M%SZ}_upgrade_downgrade_{number:012x}"
    notebook = f'{{"run": {number}}}'.encode() + b" " * NOTEBOOK_BYTES
    html = f"<!-- run {number} -->".encode() + b" " * HTML_BYTES
    if files:
        day.mkdir(parents=True, exist_ok=True)
        (day / f"{stem}.ipynb").write_bytes(notebook)
        (day / f"{stem}.html").write_bytes(html)
    failed = number % 50 == 49
    return {
        "run_id": f"{number:012x}",
        "runbook": ("upgrade_downgrade", "inspect_diff", "check_drift")[number % 3],
        "status": "failed" if failed else "passed",
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
        "error": ({"type": "OperationalError", "message": "could not connect to db:5432",
                   "step": "## 1. Preflight"} if failed else None),
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


def build_fast(directory: Path, runs: int, start: int = 0) -> None:
    """Records ``start`` to ``runs - 1``, chained and written at once as ``append_record`` would."""
    directory.mkdir(parents=True, exist_ok=True)
    last = chain.GENESIS_HASH
    if start:
        last = json.loads((directory / archive.HEAD_NAME).read_bytes())["hash"]
    with open(directory / archive.INDEX_NAME, "ab") as index:
        for number in range(start, runs):
            record = make_record(directory, number, "0" * 64, files=False)
            record["prev_hash"] = last
            record["hash"] = last = chain.chain_hash(last, record)
            index.write(chain.canonical_json(record) + b"\n")
    (directory / archive.HEAD_NAME).write_bytes(
        chain.canonical_json({"runs": runs, "hash": last}) + b"\n")


def measure_page(root: Path, runs: int) -> list[dict[str, float]]:
    """Build an index of ``runs`` records and rebuild its pages; time per-run page updates
    there, and again once the newest page is nearly full (its most rows to render)."""
    from softbee.runbook.archive import auditpage

    directory = root / f"pages-{runs}"
    build_fast(directory, runs)
    begin = time.perf_counter()
    auditpage.write_index_page(directory, full=True)
    rebuild = time.perf_counter() - begin
    first = _page_updates(directory, runs)
    total = first["runs"]
    fuller = total + (auditpage.PAGE_SIZE - PAGE_UPDATES - total) % auditpage.PAGE_SIZE
    build_fast(directory, fuller, start=total)
    auditpage.write_index_page(directory)
    return [{**first, "rebuild_s": rebuild}, _page_updates(directory, fuller)]


def _page_updates(directory: Path, runs: int) -> dict[str, float]:
    """PAGE_UPDATES runs appended (``append_record``), each followed by its page update."""
    from softbee.runbook.archive import auditpage
    from softbee.runbook.archive.pagehtml import page_file

    updates, cpu, reads, writes = [], [], [], []
    for n in range(PAGE_UPDATES):
        archive.append_record(directory, make_record(directory, runs + n, "0" * 64, files=False))
        begin, begin_cpu = time.perf_counter(), time.process_time()
        page = auditpage.write_index_page(directory)
        updates.append(time.perf_counter() - begin)
        cpu.append(time.process_time() - begin_cpu)
        reads.append(page.bytes_read)
        writes.append(sum(path.stat().st_size for path in page.written))
    updates.sort()
    newest = directory / auditpage.PAGES_DIR / page_file(page.pages)
    return {
        "runs": runs + PAGE_UPDATES,
        "newest_rows": (runs + PAGE_UPDATES - 1) % auditpage.PAGE_SIZE + 1,
        "index_mb": (directory / archive.INDEX_NAME).stat().st_size / 1e6,
        "update_median_ms": statistics.median(updates) * 1000,
        "update_p95_ms": updates[int(len(updates) * 0.95) - 1] * 1000,
        "cpu_median_ms": statistics.median(cpu) * 1000,
        "read_kb": statistics.median(reads) / 1e3,
        "written_kb": statistics.median(writes) / 1e3,
        "front_kb": (directory / auditpage.PAGE_NAME).stat().st_size / 1e3,
        "newest_kb": newest.stat().st_size / 1e3,
        "pages": page.pages,
    }


def main() -> int:
    """Print one line per archive size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1_000, 10_000])
    parser.add_argument("--page-sizes", type=int, nargs="+", default=[100, 10_000, 100_000])
    parser.add_argument("--only", choices=("verify", "page"), help="run one part only")
    parser.add_argument("--keep", metavar="DIR", help="build the archives in DIR and keep them")
    args = parser.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-archive-"))
    print(f"machine: {os.cpu_count()} cores (nproc), Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}, load average "
          + " ".join(f"{load:.1f}" for load in os.getloadavg()))
    try:
        if args.only != "page":
            verify_part(root, args.sizes)
        if args.only != "verify":
            page_part(root, args.page_sizes)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


def page_part(root: Path, sizes: list[int]) -> None:
    """Two lines per index size (newest page nearly empty, nearly full): update cost and sizes."""
    print(f"{'runs':>7} {'index':>8} {'archive html':>13} {'newest page rows':>17} "
          f"{'update median':>14} {'p95':>9} {'CPU median':>11} {'index read':>11} "
          f"{'written':>9} {'index.html':>11} {'newest page':>12} {'pages':>6}")
    for size in sizes:
        for r in measure_page(root, size):
            rebuild = f"{r['rebuild_s']:>11.2f} s" if "rebuild_s" in r else f"{'':>13}"
            print(f"{r['runs']:>7} {r['index_mb']:>5.1f} MB {rebuild} {r['newest_rows']:>17} "
                  f"{r['update_median_ms']:>11.1f} ms {r['update_p95_ms']:>6.1f} ms "
                  f"{r['cpu_median_ms']:>8.1f} ms {r['read_kb']:>8.0f} kB "
                  f"{r['written_kb']:>6.0f} kB {r['front_kb']:>8.0f} kB {r['newest_kb']:>9.0f} kB "
                  f"{r['pages']:>6}", flush=True)


def verify_part(root: Path, sizes: list[int]) -> None:
    """One line per archive size: appends, finding the chain's end, verify."""
    print(f"{'runs':>7} {'append median':>14} {'append p95':>11} {'find chain end':>15} "
          f"{'read whole index':>17} {'index':>8} {'verify':>8} {'verify --since':>15}")
    for size in sizes:
        r = measure(root, size)
        print(f"{r['runs']:>7} {r['append_median_ms']:>11.2f} ms {r['append_p95_ms']:>8.2f} ms "
              f"{r['chain_end_ms']:>12.3f} ms {r['whole_index_read_ms']:>14.1f} ms "
              f"{r['index_mb']:>5.1f} MB {r['verify_s']:>6.2f} s {r['verify_since_s']:>13.2f} s",
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
