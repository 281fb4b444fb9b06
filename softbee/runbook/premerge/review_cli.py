"""``softbee-runbook review`` and ``softbee-runbook stats export``: options, one library call, output, exit code.

Exit status of ``review``: 0 clean, 1 a finding at or above ``--fail-on`` (error by
default), 2 bad input (not a git repository, an unknown base, an unreadable stats file).
The library is imported when a command runs: ``--help`` stays light.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from softbee.runbook.errors import ConfigError, ReviewError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
PROG = "softbee-runbook"


def add_review_parsers(commands: Any) -> None:
    """Add ``review`` and ``stats export`` to the CLI's subcommands."""
    review = commands.add_parser(
        "review", help="review the migrations a branch adds since a base (for pull requests)")
    review.add_argument("--base", required=True, metavar="REF",
                        help="the git reference the branch is to be merged into, e.g. origin/main")
    review.add_argument("--stats", metavar="FILE",
                        help="production's sizes (`stats export`): lint and lock time against them")
    review.add_argument("--format", choices=("text", "markdown", "json"), default="text",
                        help="how to print the review (markdown: a PR comment; default text)")
    review.add_argument("--junit", metavar="FILE", help="also write JUnit XML, one test case per check")
    review.add_argument("--output", "-o", metavar="FILE", help="write the review here, not to stdout")
    review.add_argument("--fail-on", choices=("error", "warning"), default="error",
                        help="exit 1 on findings this severe or worse (default error)")
    review.add_argument("--database-url", metavar="URL",
                        help="a server to make scratch databases on (default: a temporary SQLite "
                        "file); a PostgreSQL or MariaDB one reviews in that database's SQL")
    review.add_argument("--app", default="softbee:create_app", metavar="APP",
                        help="the Flask app (default softbee:create_app)")
    review.add_argument("--migrations-dir", default="migrations", metavar="DIR",
                        help="the project's Flask-Migrate directory (default migrations)")
    review.add_argument("--max-lock-minutes", type=_minutes, default=3.0, metavar="M",
                        help="lock time a regular revision may hold (default 3, GitLab's)")
    review.add_argument("--max-post-deploy-lock-minutes", type=_minutes, default=10.0, metavar="M",
                        help="lock time a `# runbook: post-deploy` revision may hold (default 10)")

    stats = commands.add_parser("stats", help="production's sizes for `review --stats`")
    actions = stats.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="write tables, estimated rows and bytes, indexes "
                                "and column types to a JSON file (no rows, no password)")
    export.add_argument("--database-url", metavar="URL",
                        help="the database to read (default: $DATABASE_URL)")
    export.add_argument("-o", "--output", required=True, metavar="FILE", help="the JSON file to write")


def review_command(args: argparse.Namespace, out: TextIO) -> int:
    """Run the review, print it in ``--format``, write ``--junit``; the exit status."""
    from softbee.runbook.premerge.branch_review import review_branch
    from softbee.runbook.premerge.locktime import LockModel
    from softbee.runbook.premerge.report import junit_report, render

    model = LockModel(regular_s=args.max_lock_minutes * 60,
                      post_deploy_s=args.max_post_deploy_lock_minutes * 60)
    try:
        review = review_branch(args.base, app=args.app, migrations_dir=args.migrations_dir,
                               database_url=args.database_url, stats_file=args.stats, model=model)
    except ReviewError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    text = render(review, args.format, args.fail_on)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        out.write(text)
    if args.junit:
        Path(args.junit).write_text(junit_report(review, args.fail_on), encoding="utf-8")
    failed = review.failed(args.fail_on)
    if failed:
        print(f"{PROG}: review failed: {review.outcome()}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def stats_command(args: argparse.Namespace, out: TextIO) -> int:
    """Export the sizes of ``--database-url`` (or ``$DATABASE_URL``) to ``-o FILE``."""
    from softbee.runbook.premerge.stats import export_from_url, write_stats

    url = args.database_url or os.environ.get("DATABASE_URL")
    if not url:
        print(f"{PROG}: error: no database to read: pass --database-url or set DATABASE_URL",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        stats = export_from_url(url)
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    path = write_stats(stats, Path(args.output))
    rows = sum(t.rows or 0 for t in stats.tables.values())
    print(f"wrote {path}: {len(stats.tables)} table(s), about {rows:,} rows ({stats.dialect} "
          f"{stats.database}); no rows or password in it", file=out)
    return EXIT_OK


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of minutes") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive number of minutes")
    return value
