"""``softbee-runbook``: list, run and audit the runbooks. A thin skin over the library.

Exit status: 0 success; 1 the runbook failed (it is archived) or ``archive
verify`` found something off; 2 bad input (unknown runbook or parameter, wrong
type, unusable archive directory...), with nothing executed and nothing archived.

Each command imports what it uses when it runs: ``--help``, ``list`` and ``fleet
status`` never import papermill, nbconvert, pandas or Flask (tests/run/test_runbook_cli.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import Any, NoReturn, TextIO

from softbee.runbook.errors import (
    ArchiveError,
    CatalogError,
    NotArchived,
    ParameterError,
    RunbookError,
)
from softbee.runbook.fleet.fleet_cli import add_fleet_parser, fleet_command, fleet_list
from softbee.runbook.premerge.review_cli import add_review_parsers, review_command, stats_command
from softbee.runbook.run.catalog import Runbook, list_runbooks, load_parameter_file, runbooks_dir
from softbee.runbook.run.process import Terminated, exit_now
from softbee.runbook.run.report import error_line, print_summary, print_table

PROG = "softbee-runbook"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_USAGE_ERRORS = (ParameterError, CatalogError, ArchiveError)


def _terminate(signum: int, _frame: Any) -> None:
    raise Terminated(f"stopped by signal {signal.Signals(signum).name}")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (no usage block) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = _Parser(prog=PROG, description="List, run and audit Soft-Bee migration runbooks.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("list", help="each runbook with its purpose and parameters")

    run = commands.add_parser("run", help="validate parameters, execute, archive and summarise")
    run.add_argument("name", metavar="NAME", help="the runbook (see 'softbee-runbook list')")
    run.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("KEY", "VALUE"),
        help="a parameter, coerced to the type the notebook declares (repeatable)",
    )
    run.add_argument(
        "-f", "--parameters-file", metavar="YAML", help="parameters from a YAML mapping"
    )
    _archive_dir_option(run)

    add_fleet_parser(commands, _archive_dir_option)
    add_review_parsers(commands)

    group = commands.add_parser("archive", help="the archive of past runs")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    runs = actions.add_parser("list", help="a table of archived runs")
    runs.add_argument("--runbook", metavar="NAME", help="only this runbook's runs")
    runs.add_argument("--status", choices=("passed", "failed"), help="only runs with this status")
    runs.add_argument("--since", type=_date, metavar="DATE", help="only runs started since (UTC)")
    runs.add_argument("--fleet", metavar="FLEET_ID", help="only the runs of this fleet run")
    _archive_dir_option(runs)
    show = actions.add_parser("show", help="one run's record and the paths of its files")
    show.add_argument("run_id", metavar="RUN_ID", help="a run id (or a unique prefix of one)")
    _archive_dir_option(show)
    verify = actions.add_parser("verify", help="check every file and record against the index")
    verify.add_argument(
        "--since",
        type=_date,
        metavar="DATE",
        help="check only the files of runs started since DATE (UTC); the chain is checked whole",
    )
    verify.add_argument("--database", action="append", default=[], metavar="URL",
                        help="also check this database's history table against the archive, "
                             "both ways (repeatable; a password is best left to the environment)")
    verify.add_argument("--targets", metavar="FILE",
                        help="also check every database of this fleet targets file (every bind's)")
    verify.add_argument("--history-table", default=None, metavar="NAME",
                        help="the history table's name (default: $SOFTBEE_HISTORY_TABLE, else "
                             "softbee_runbook_history)")
    _archive_dir_option(verify)
    page = actions.add_parser(
        "html", help="write <archive>/index.html: every run in one page to open in a browser"
    )
    _archive_dir_option(page)
    return parser


def entry() -> NoReturn:
    """The ``softbee-runbook`` console script: :func:`main`, then exit without the clean-up.

    Once the command is done (the run archived, its kernel stopped, the output
    written), Python's final clean-up of its own memory (collecting every object,
    tearing down every module, papermill's and zmq's among them) only delays the
    prompt: 0.2-0.3 s on the loaded 2-core machine. The atexit handlers still run and
    the output is flushed; :func:`main` called in a process of one's own returns as ever.
    """
    code = main()
    exit_now(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``softbee-runbook`` command; its exit status (see the module's docstring)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed on one line
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        if args.command == "list":
            return _list(sys.stdout)
        if args.command == "run":
            previous = signal.signal(signal.SIGTERM, _terminate)  # so the partial run is archived
            try:
                return _run(args, sys.stdout)
            finally:
                signal.signal(signal.SIGTERM, previous)
        if args.command == "fleet":
            args.drift_factory = lambda *a: import_module(  # fleet sits below review
                "softbee.runbook.review.drift_many").FleetDrift(*a)
            return fleet_command(args, sys.stdout)
        if args.command == "review":
            return review_command(args, sys.stdout)
        if args.command == "stats":
            return stats_command(args, sys.stdout)
        return _archive(args, sys.stdout)
    except NotArchived as exc:  # the run ran: not a usage error
        return _fail(EXIT_FAILED, str(exc))
    except _USAGE_ERRORS as exc:
        return _fail(EXIT_USAGE, str(exc))
    except RunbookError as exc:
        return _fail(EXIT_FAILED, str(exc))
    except OSError as exc:
        return _fail(EXIT_FAILED, f"{exc} (check the path and its permissions)")
    except KeyboardInterrupt:
        return _fail(130, "interrupted")


def _fail(code: int, message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def _archive_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--archive-dir",
        metavar="DIR",
        help="the archive (default: $RUNBOOK_ARCHIVE_DIR, else archive/ at the project root: "
        "$SOFTBEE_PROJECT_ROOT, else the current directory)",
    )


def _date(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


# -- list -------------------------------------------------------------------------------------


def _list(out: TextIO) -> int:
    folder = runbooks_dir()
    runbooks = list_runbooks(folder)
    if not runbooks:
        print(f"no runbooks in {folder}", file=out)
        return EXIT_OK
    for number, runbook in enumerate(runbooks):
        if number:
            print(file=out)
        _print_runbook(runbook, out)
    return EXIT_OK


def _print_runbook(runbook: Runbook, out: TextIO) -> None:
    if runbook.problem:
        print(f"{runbook.name} - cannot be read: {runbook.problem}", file=out)
        return
    print(f"{runbook.name} - {runbook.purpose or '(no description)'}", file=out)
    if not runbook.parameters:
        print("    (no parameters)", file=out)
        return
    rows = [
        (
            p.name,
            p.shown_type,
            "required" if p.required else f"= {p.default}",
            p.help.partition(":")[2].strip() if p.required else p.help,
        )
        for p in runbook.parameters
    ]
    print_table(rows, out, indent="    ")


# -- run --------------------------------------------------------------------------------------


def _run(args: argparse.Namespace, out: TextIO) -> int:
    from softbee.runbook.run.execute import run_runbook  # papermill: seconds to import

    values = load_parameter_file(args.parameters_file) if args.parameters_file else {}
    texts = {key: value for key, value in args.parameter}
    run = run_runbook(
        args.name,
        values=values,
        texts=texts,
        archive_dir=args.archive_dir,
        progress=sys.stderr.isatty(),
    )
    record = run.record
    print(f"archived: {run.notebook}", file=out)
    print(f"          {run.html}", file=out)
    print_summary(record, out)
    if run.passed:
        return EXIT_OK
    line = error_line(PROG, record, run.html)
    if (record.get("error") or {}).get("type") in ("Terminated", "KeyboardInterrupt"):
        line = _stopped_line(line, args.name, {**values, **texts})
    print(line, file=sys.stderr)
    return EXIT_FAILED


def _stopped_line(line: str, name: str, given: dict[str, Any]) -> str:
    """A stopped run's line, with where its database is now (read from it) before ``(see ...)``."""
    import ast

    from softbee.runbook.engine.faults import where_after_stop
    from softbee.runbook.run.catalog import find_runbook

    defaults = {p.name: p.default for p in find_runbook(name).parameters}
    if "app" not in defaults:  # not a runbook on a project's database
        return line

    def value(key: str, fallback: str) -> Any:
        if key in given:
            return given[key]
        try:
            return ast.literal_eval(defaults.get(key, fallback))
        except (ValueError, SyntaxError):
            return ast.literal_eval(fallback)

    url = value("database_url", "None")
    where = where_after_stop(str(value("app", "'softbee:create_app'")),
                             str(value("migrations_dir", "'migrations'")),
                             None if url in (None, "None", "") else str(url))
    head, sep, tail = line.rpartition(" (see ")
    return f"{head}; {where}{sep}{tail}" if sep else f"{line}; {where}"


# -- archive ----------------------------------------------------------------------------------


def _archive(args: argparse.Namespace, out: TextIO) -> int:
    from softbee.runbook import archive
    from softbee.runbook.archive import auditpage

    directory = archive.archive_dir(args.archive_dir)
    if args.action == "list" and args.fleet:
        return fleet_list(directory, args.fleet, out)
    if args.action == "list":
        runs = archive.list_runs(
            directory, runbook=args.runbook, status=args.status, since=args.since
        )
        damaged = archive.unreadable_lines(directory)
        if damaged:
            print(f"{PROG}: warning: index lines {', '.join(map(str, damaged))} are unreadable and "
                  "not listed: run `softbee-runbook archive verify`", file=sys.stderr)
        if not runs:
            print(f"no archived runs match in {directory}", file=out)
            return EXIT_OK
        rows = [("RUN ID", "STARTED (UTC)", "RUNBOOK", "STATUS", "SECONDS", "REVISION", "DATABASE")]
        for record in runs:
            fleet = record.get("kind") == "fleet"
            rows.append(
                (
                    str(record.get("run_id")),
                    str(record.get("started_at", ""))[:19].replace("T", " "),
                    f"{record.get('runbook')} (fleet)" if fleet else str(record.get("runbook")),
                    str(record.get("status")),
                    str(record.get("duration_s")),
                    (
                        f"{record.get('revision_before') or '-'} -> "
                        f"{record.get('revision_after') or '-'}"
                    ),
                    (f"{len(record.get('targets') or [])} targets" if fleet
                     else auditpage.database_label(record.get("database")) or "-"),
                )
            )
        print_table(rows, out)
        return EXIT_OK
    if args.action == "show":
        run = archive.find_run(directory, args.run_id)
        for key, value in run.record.items():
            if key in ("notebook", "html"):
                continue
            shown = value if isinstance(value, str) or value is None else json.dumps(value)
            print(f"{key + ':':17}{shown}", file=out)
        if run.record.get("kind") == "fleet":
            return EXIT_OK
        print(f"{'notebook path:':17}{run.notebook}", file=out)
        print(f"{'html path:':17}{run.html}", file=out)
        return EXIT_OK
    if args.action == "html":
        page = auditpage.write_index_page(directory, full=True)
        print(f"wrote {page.path}: {page.runs} run(s), {page.failed} failed, {page.pages} "
              "page(s) (open it in a browser; no server needed)", file=out)
        return EXIT_OK
    problems = archive.verify_archive(directory, since=args.since)
    problems += _vouch_databases(args, directory, out)
    for problem in problems:
        print(problem, file=out)
    if problems:
        print(f"{PROG}: archive {directory} has {len(problems)} problem(s)", file=sys.stderr)
        return EXIT_FAILED
    count = archive.head_runs(directory) or 0  # verified: index.head matches the index
    if args.since is not None:
        print(
            f"archive OK: the chain of {count} run(s) holds, and every file of the runs started "
            f"since {args.since:%Y-%m-%d %H:%M} UTC matches the index ({directory})",
            file=out,
        )
        return EXIT_OK
    print(
        f"archive OK: {count} run(s), every file and record matches the index ({directory})",
        file=out,
    )
    return EXIT_OK


def _vouch_databases(args: argparse.Namespace, directory: Path, out: TextIO) -> list[Any]:
    """``--database``/``--targets``: each database's history against the archive, one line each."""
    from softbee.runbook.fleet.targets import load_targets
    from softbee.runbook.history.vouch import verify_database
    from softbee.runbook.util.history_name import history_table_name

    databases = [(url, None) for url in args.database]
    if args.targets:
        fleet = load_targets(args.targets)
        for target in fleet.targets:  # every bind's database of a target with binds
            databases.append((target.resolve_url(), target.name))
            databases += [(url, f"{target.name} (bind {bind})")
                          for bind, url in target.resolve_bind_urls().items()]
    table = args.history_table or history_table_name()
    problems: list[Any] = []
    for url, name in databases:
        found = verify_database(directory, url, table, label=name)
        print(found.line(), file=out)
        problems += found.problems
    return problems
