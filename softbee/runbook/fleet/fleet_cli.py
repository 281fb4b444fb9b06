"""``softbee-runbook fleet targets|status|run``: options, one library call, output and exit code."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from softbee.runbook.errors import ConfigError
from softbee.runbook.fleet.targets import Fleet, Target, TargetsError, load_targets
from softbee.runbook.run.report import print_table

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
PROG = "softbee-runbook"


def add_fleet_parser(commands: Any, archive_dir_option: Any) -> None:
    """Add ``fleet targets``, ``fleet status`` and ``fleet run`` to the CLI's subcommands."""
    fleet = commands.add_parser("fleet", help="one runbook across many databases")
    actions = fleet.add_subparsers(dest="action", required=True, metavar="ACTION")

    targets = actions.add_parser("targets", help="check a targets file and list its targets")
    targets.add_argument("file", metavar="FILE", help="the targets file (YAML)")

    status = actions.add_parser("status", help="every target's revision against the heads")
    status.add_argument("file", metavar="FILE", help="the targets file (YAML)")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.add_argument("--migrations-dir", default="migrations", metavar="DIR",
                        help="the revision scripts (default: migrations)")
    status.add_argument("--to", metavar="REVISION",
                        help="compare with this revision instead of the heads")
    status.add_argument("--version-table", default="alembic_version", metavar="NAME",
                        help="the version table env.py configures (default alembic_version)")
    status.add_argument("--workers", type=_positive, default=16, metavar="N",
                        help="connections open at once, in all (default 16)")
    status.add_argument("--per-server", type=_positive, default=8, metavar="N",
                        help="connections open at once to one server (default 8)")
    status.add_argument("--drift", action="store_true",
                        help="also check each target's schema against its recorded revision's")
    status.add_argument("--app", default="softbee:create_app", metavar="APP",
                        help="the Flask app the drift check loads (default softbee:create_app)")
    status.add_argument("--connect-timeout", type=_positive, default=5, metavar="S",
                        help="seconds to wait for each target's connection (default 5)")

    run = actions.add_parser("run", help="run a runbook on every target, canary and waves first")
    run.add_argument("runbook", metavar="RUNBOOK", help="the runbook (see 'softbee-runbook list')")
    run.add_argument("file", metavar="FILE", help="the targets file (YAML)")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                     metavar=("KEY", "VALUE"), help="a runbook parameter (repeatable)")
    run.add_argument("-f", "--parameters-file", metavar="YAML",
                     help="parameters from a YAML mapping")
    run.add_argument("--parallel", type=_positive, default=1, metavar="N",
                     help="targets running at once (default 1)")
    run.add_argument("--canary", metavar="NAME", help="run this target alone first")
    run.add_argument("--waves", action="store_true",
                     help="run the file's waves in order (default: all targets as one wave)")
    run.add_argument("--max-failures", type=_positive, default=1, metavar="K",
                     help="stop starting targets once K have failed (default 1)")
    run.add_argument("--allow-drift", action="store_true",
                     help="run drifted targets too (passes allow_drift=True to the runbook)")
    run.add_argument("--target-timeout", type=_positive, default=3600, metavar="S",
                     help="stop a target's run after S seconds (default 3600)")
    archive_dir_option(run)


def fleet_command(args: argparse.Namespace, out: TextIO) -> int:
    """Carry out one ``fleet`` action; TargetsError prints one line per problem, exit 2."""
    try:
        if args.action == "targets":
            return _targets(load_targets(args.file), out)
        if args.action == "status":
            return _status(args, out)
        return _run(args, out)
    except TargetsError as exc:
        for problem in exc.problems:
            print(f"{PROG}: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:  # no migrations, unknown --to revision: bad input, nothing read
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _targets(fleet: Fleet, out: TextIO) -> int:
    binds = any(t.binds for t in fleet.targets)
    rows = [("TARGET", "WAVE", "URL FROM", "CONNECTION", "TAGS") + (("BINDS",) if binds else ())]
    for target in fleet.targets:
        row = (target.name, str(target.wave), target.source if target.url_env or target.url
               else "-", target.conn_id or "-", ",".join(target.tags) or "-")
        rows.append(row + ((", ".join(map(_bind_cell(target), target.binds)) or "-",)
                           if binds else ()))
    print_table(rows, out)
    print(f"{len(fleet.targets)} target(s) in {len(fleet.waves)} wave(s): {fleet.path} is usable",
          file=out)
    return EXIT_OK


def _bind_cell(target: Target) -> Callable[[str], str]:
    """``audit ($TENANT_A_AUDIT_URL, connection a_audit)``: where a bind's URL comes from."""
    conn_ids = dict(target.bind_conn_id)

    def cell(bind: str) -> str:
        source = target.bind_source(bind)
        extra = f", connection {conn_ids[bind]}" if bind in conn_ids and not source.startswith(
            "connection") else ""
        return f"{bind} ({source}{extra})"

    return cell


def _status(args: argparse.Namespace, out: TextIO) -> int:
    from softbee.runbook.fleet.status import (
        drift_lines,
        fleet_status,
        status_header,
        status_rows,
        unreachable,
    )

    status = fleet_status(
        load_targets(args.file), args.migrations_dir, workers=args.workers,
        per_server=args.per_server, connect_timeout_s=args.connect_timeout,
        version_table=args.version_table, to=args.to,
        drift=args.drift_factory(args.app, args.migrations_dir) if args.drift else None,
    )
    if args.json:
        print(json.dumps(status.to_json(), indent=2), file=out)
    else:
        print_table([status_header(status), *status_rows(status)], out)
        for target in unreachable(status):
            print(f"unreachable: {target.name}: {target.detail}", file=out)
        for line in drift_lines(status):
            print(line, file=out)
        print(status.summary(), file=out)
    return EXIT_OK if status.all_at_head and status.no_drift else EXIT_FAILED


def _run(args: argparse.Namespace, out: TextIO) -> int:
    from softbee.runbook.fleet.drift import SKIPPED_DRIFT
    from softbee.runbook.fleet.fleet_run import FAILED, NOT_STARTED, PASSED, run_fleet
    from softbee.runbook.run.catalog import load_parameter_file

    fleet = load_targets(args.file)
    values = load_parameter_file(args.parameters_file) if args.parameters_file else {}
    given = {**values, **dict(args.parameter)}  # the app and migrations the drift gate loads
    stop = threading.Event()
    live = _LiveLine(sys.stderr)

    def request_stop(signum: int, _frame: Any) -> None:
        stop.set()
        live.note(f"{signal.Signals(signum).name}: no new target starts; waiting for the "
                  "running ones to finish")

    saved = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        result = run_fleet(
            args.runbook, fleet, values=values, texts=dict(args.parameter),
            parallel=args.parallel, canary=args.canary, waves=args.waves,
            max_failures=args.max_failures, archive_dir=args.archive_dir, stop=stop,
            on_progress=lambda p: live.show(p.stage, p.line()),
            target_timeout_s=args.target_timeout,
            drift=None if args.allow_drift else args.drift_factory(
                given.get("app", "softbee:create_app"), given.get("migrations_dir", "migrations")),
            allow_drift=args.allow_drift,
        )
    finally:
        live.close()
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    rows = [("TARGET", "STAGE", "STATUS", "RUN ID", "REVISION", "HTML / ERROR")]
    for target in result.targets:
        revision = (f"{target.revision_before or '-'} -> {target.revision_after or '-'}"
                    if target.run_id else "-")
        detail = target.html or target.error or "-"
        if target.status == FAILED and target.html and target.error:
            detail = f"{target.html}  ({target.error})"
        rows.append((target.name, target.stage, target.status, target.run_id or "-",
                     revision, detail))
    print_table(rows, out)
    counts = {s: len(result.with_status(s)) for s in (PASSED, FAILED, NOT_STARTED)}
    print(f"fleet {result.fleet_id}: {result.status}: {counts[PASSED]} passed, "
          f"{counts[FAILED]} failed, {counts[NOT_STARTED]} not started"
          + (f", {len(result.with_status(SKIPPED_DRIFT))} skipped (drift)"
             if result.with_status(SKIPPED_DRIFT) else "")
          + (f" ({result.stopped})" if result.stopped else ""), file=out)
    print(f"record: softbee-runbook archive list --fleet {result.fleet_id}", file=out)
    if result.status == PASSED:
        return EXIT_OK
    names = ", ".join(t.name for t in result.with_status(FAILED)) or "none"
    drifted = ", ".join(t.name for t in result.with_status(SKIPPED_DRIFT))
    print(f"{PROG}: fleet {result.fleet_id} {result.status}: failed: {names}"
          + (f"; skipped, drifted (--allow-drift runs them): {drifted}" if drifted else ""),
          file=sys.stderr)
    return EXIT_FAILED


class _LiveLine:
    """One progress line per stage: rewritten in place on a terminal, printed on change otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.stage: str | None = None
        self.last = ""

    def show(self, stage: str, line: str) -> None:
        if line == self.last:
            return
        if self.tty:
            if stage != self.stage and self.stage is not None:
                self.stream.write("\n")
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.stage, self.last = stage, line

    def note(self, message: str) -> None:
        self.stream.write(("\n" if self.tty and self.last else "") + message + "\n")
        self.stream.flush()
        self.last = ""

    def close(self) -> None:
        if self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()


def fleet_list(directory: Path, fleet_id: str, out: TextIO) -> int:
    """``archive list --fleet ID``: a fleet run and each of its targets' runs."""
    from softbee.runbook.fleet.records import fleet_runs

    fleet, runs = fleet_runs(directory, fleet_id)
    counts = ", ".join(f"{n} {s}" for s, n in (fleet.get("counts") or {}).items())
    print(f"fleet {fleet.get('fleet_id')}  {fleet.get('runbook')}  {fleet.get('status')}  "
          f"{str(fleet.get('started_at', ''))[:19].replace('T', ' ')}  {counts}"
          + (f"  ({fleet['stopped']})" if fleet.get("stopped") else ""), file=out)
    rows = [("TARGET", "STATUS", "RUN ID", "REVISION", "HTML")]
    linked = {r.get("run_id"): r for r in runs}
    for target in fleet.get("targets") or []:
        run = linked.get(target.get("run_id")) or {}
        rows.append((str(target.get("name")), str(target.get("status")),
                     str(target.get("run_id") or "-"),
                     (f"{run.get('revision_before') or '-'} -> {run.get('revision_after') or '-'}"
                      if run else "-"),
                     str(directory / run["html"]) if run.get("html") else "-"))
    print_table(rows, out)
    return EXIT_OK


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value
