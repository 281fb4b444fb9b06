"""What the CLI prints of a run: its summary, the one line of a failure, aligned tables.

The summary's lines after the row counts are the run's first words
(:func:`softbee.runbook.archive.summary.first_words`), the same lines the top of its archived
page shows, so the terminal and the page cannot tell a run differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from softbee.runbook.util.sqltext import one_line


def print_table(rows: Sequence[Sequence[str]], out: TextIO, indent: str = "") -> None:
    """``rows`` (the first one a header) as columns padded to their widest cell."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        print((indent + "  ".join(cells)).rstrip(), file=out)


def error_line(prog: str, record: dict[str, Any], html: Path) -> str:
    """The one line on stderr for a failed run: where it failed, the error and its advice."""
    error = record.get("error") or {}
    where = f" at step {error['step']!r}" if error.get("step") else ""
    return (f"{prog}: runbook {record['runbook']!r} failed{where}: {error.get('type')}: "
            f"{one_line(error.get('message') or '')} (see {html})")


def print_summary(record: dict[str, Any], out: TextIO) -> None:
    """A run's summary: id and status, database, revisions, row counts, then its first words."""
    from softbee.runbook.archive import auditpage  # the archive package: only once a run is done
    from softbee.runbook.archive.summary import first_words

    print(f"run:      {record.get('run_id')}  {record.get('runbook')}  {record.get('status')} "
          f"in {record.get('duration_s')} s", file=out)
    database = auditpage.database_label(record.get("database"))
    if database:
        environment = record.get("environment")
        print(f"database: {database}" + (f" ({environment})" if environment else ""), file=out)
    before, after = record.get("revision_before"), record.get("revision_after")
    if before is not None or after is not None:
        print(f"revision: {before or '(none)'} -> {after or '(none)'}", file=out)
    counts = record.get("row_counts") or []
    if counts:
        rows = [("table", "before", "after", "delta")]
        for count in counts:
            delta = count.get("delta")
            rows.append((str(count.get("table")), _count(count.get("before")),
                         _count(count.get("after")),
                         f"{delta:+d}" if isinstance(delta, int) else str(delta)))
        print("rows:", file=out)
        print_table(rows, out, indent="    ")
    extra = record.get("extra_facts") or {}
    binds = extra.get("binds") or record.get("binds") or {}
    for name in sorted(binds, key=lambda n: n != "default") if isinstance(binds, dict) else ():
        facts = binds[name]  # several databases: the default one first
        facts = facts if isinstance(facts, dict) else {}
        moved = (f"{facts.get('revision_before') or '(none)'} -> "
                 f"{facts.get('revision_after') or '(none)'}")
        outcome = f"  ({facts['outcome']})" if facts.get("outcome") else ""
        print(f"bind {name}: {moved}{outcome}", file=out)
    if record.get("outcome"):
        print(f"outcome:  {record['outcome']}", file=out)
    if extra.get("app_load_check"):
        print(f"app load: {extra['app_load_check']}", file=out)
    # The page's first words after its outcome line (printed above, or as the error below).
    for line in first_words(extra)[1:]:
        if not line.startswith("revision: "):
            print(line, file=out)
    error = record.get("error")
    if error:
        count = error.get("execution_count")
        cell = f"cell In [{count}]" if count is not None else f"cell {error.get('cell')}"
        step = f", step {error['step']!r}" if error.get("step") else ""
        print(f"error:    {error.get('type')}: {one_line(error.get('message') or '')} "
              f"({cell}{step})", file=out)


def _count(value: Any) -> str:
    return "-" if value is None else str(value)  # None: the table did not exist
