"""The run archive: every executed runbook, as notebook and html, indexed in a hash chain.

Layout::

    <archive>/index.jsonl                          one record per run, chained by sha256
    <archive>/index.head                           {"runs": N, "hash": last record's hash}
    <archive>/YYYY/MM/DD/<UTC stamp>_<runbook>_<run id>.ipynb
    <archive>/YYYY/MM/DD/<UTC stamp>_<runbook>_<run id>.html
    <archive>/static/notebook-<sha256 prefix>.css  the stylesheet every html links (written once)
    <archive>/index.html, <archive>/pages/         the auditors' pages (derived, see auditpage)

Each record is chained to the one before it by sha256, and ``index.head`` anchors the
chain's end (:mod:`softbee.runbook.archive.chain` appends, reads and verifies it); this
module writes a run's files and its record, and finds runs.

The chain makes edits evident, not impossible: whoever can write the archive can
rewrite it whole. Keep a copy of ``index.head`` elsewhere to pin the history.

Package ``softbee.runbook.archive``: runs and their files (this module), the hash chain
(``chain``; files written whole and hashed by ``files``), the auditors' pages (``auditpage``,
HTML in ``pagehtml``), a notebook's HTML (``render``) and the facts a run records (``summary``).
Imports only :mod:`~softbee.runbook.util`; never ``project``, ``review``, ``engine``,
``run`` or ``fleet``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import hashlib
import json
import os
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from softbee.runbook.archive.chain import (
    ARCHIVE_DIR_ENV,
    FILE_KEYS,
    GENESIS_HASH,
    HEAD_NAME,
    INDEX_NAME,
    Problem,
    append_record,
    canonical_json,
    chain_hash,
    head_runs,
    parse_iso,
    read_index,
    unreadable_lines,
    verify_archive,
    write_atomic,
)
from softbee.runbook.archive.summary import FACT_KEYS, first_words, read_summary
from softbee.runbook.errors import ArchiveError, NotArchived
from softbee.urls import normalise_url

__all__ = [
    "ARCHIVE_DIR_ENV", "FILE_KEYS", "GENESIS_HASH", "HEAD_NAME", "INDEX_NAME", "ArchiveError",
    "ArchivedRun", "Problem", "append_record", "archive_dir", "archive_run", "canonical_json",
    "chain_hash", "check_writable", "database_identity", "find_run", "git_commit", "head_runs",
    "list_runs", "parse_iso", "read_index", "unreadable_lines", "verify_archive", "write_atomic",
]

if TYPE_CHECKING:  # nbformat costs seconds to import; appending and verifying never need it
    import nbformat

GIT_TIMEOUT_S = 5.0
_IDENTITY_KEYS = ("dialect", "host", "port", "database")


@dataclass(frozen=True)
class ArchivedRun:
    """One archived run: its index record and the absolute paths of its two files."""

    record: dict[str, Any]
    notebook: Path
    html: Path

    @property
    def passed(self) -> bool:
        """Whether the runbook ran to the end without an error."""
        return self.record.get("status") == "passed"


def archive_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``explicit`` (--archive-dir), else $RUNBOOK_ARCHIVE_DIR, else the project root's archive/.

    The project root is :func:`~softbee.runbook.util.roots.project_root`
    ($SOFTBEE_PROJECT_ROOT, else the cwd), the folder ``migrations_dir`` is resolved against.
    """
    chosen = explicit or os.environ.get(ARCHIVE_DIR_ENV)
    if not chosen:
        from softbee.runbook.util.roots import project_root

        return project_root() / "archive"
    return Path(chosen).expanduser().absolute()


def check_writable(directory: Path) -> None:
    """Refuse an archive location that is a file or sits in a folder we cannot write."""
    hint = "pass --archive-dir DIR or set RUNBOOK_ARCHIVE_DIR"
    if directory.exists() and not directory.is_dir():
        raise ArchiveError(f"archive path {str(directory)!r} is not a directory: {hint}")
    existing = directory
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ArchiveError(f"archive directory {str(directory)!r} is not writable: {hint}")
    index = directory / INDEX_NAME
    if index.exists() and not os.access(index, os.W_OK):
        raise ArchiveError(f"archive index {str(index)!r} is not writable: {hint}")


def archive_run(
    nb: nbformat.NotebookNode,
    *,
    directory: Path,
    runbook: str,
    run_id: str,
    started: dt.datetime,
    finished: dt.datetime,
    parameters: Mapping[str, Any],
    error: Mapping[str, Any] | None = None,
    project_dir: Path | None = None,
    write_page: bool = True,
) -> ArchivedRun:
    """Write an executed, already redacted notebook and its html, then append its record.

    The auditors' pages are updated afterwards unless ``write_page`` is False (a fleet
    updates them once, when its record is appended).
    """
    import nbformat

    from softbee.runbook.archive.render import render_html

    project = (project_dir or Path.cwd()).absolute()
    started, finished = started.astimezone(dt.UTC), finished.astimezone(dt.UTC)
    day = directory / f"{started:%Y}" / f"{started:%m}" / f"{started:%d}"
    stem = f"{started:%Y%m%dT%H%M%SZ}_{runbook}_{run_id}"
    notebook_path, html_path = day / f"{stem}.ipynb", day / f"{stem}.html"
    nb.metadata.setdefault("papermill", {})["output_path"] = str(notebook_path)
    # nbformat's own form (transient fields dropped), compact: its indentation adds a third
    notebook_bytes = canonical_json(json.loads(nbformat.writes(nb, split_lines=False)))
    facts = read_summary(nb)
    rendered = render_html(nb, up=len(day.relative_to(directory).parts),
                           summary=first_words(facts, error))
    stylesheet_path = directory / rendered.stylesheet_name
    written: list[Path] = []
    try:
        day.mkdir(parents=True, exist_ok=True)
        if not stylesheet_path.is_file():  # content-addressed: written by the first run needing it
            stylesheet_path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(stylesheet_path, rendered.stylesheet, mode=0o644)
            written.append(stylesheet_path)
        # Under hidden pending names until the record is appended: a run killed while it waits
        # for the index's lock leaves no file that the index does not list.
        pending = [(path, path.with_name(f".{path.name}.pending"), data)
                   for path, data in ((notebook_path, notebook_bytes), (html_path, rendered.html))]
        for _final, temporary, data in pending:
            write_atomic(temporary, data)
            written.append(temporary)

        def publish() -> None:
            for final, temporary, _data in pending:
                os.replace(temporary, final)
                written.append(final)

        record = _append(directory, notebook_path, html_path, rendered, notebook_bytes, facts,
                         error, publish, run_id=run_id, runbook=runbook, started=started,
                         finished=finished, parameters=parameters, project=project)
    except BaseException as exc:  # a full disk, a SIGTERM: nothing half-archived, the end said
        for path in written:
            path.unlink(missing_ok=True)
        if not isinstance(exc, (OSError, KeyboardInterrupt, ArchiveError)):  # a stuck lock too
            raise
        raise NotArchived(not_archived(directory, runbook, facts, error, notebook_bytes, exc,
                                       stem)) from exc
    if write_page:
        from softbee.runbook.archive.auditpage import write_index_page  # not needed to append

        try:
            write_index_page(directory)  # the auditors' index.html, with this run in it
        except OSError as exc:
            raise ArchiveError(
                f"runbook {runbook!r} {'failed' if error else 'passed'} and is archived (run "
                f"{run_id} in {directory / INDEX_NAME}), but the auditors' page could not be "
                f"updated: {exc.strerror or exc}: free space and run `softbee-runbook archive "
                "html`") from exc
    return ArchivedRun(record=record, notebook=notebook_path, html=html_path)


def not_archived(directory: Path, runbook: str, facts: Mapping[str, Any],
                 error: Mapping[str, Any] | None, notebook: bytes, exc: BaseException,
                 stem: str) -> str:
    """The one line of a run that could not be archived: how it ended, why, where its notebook is."""
    import tempfile

    if error:
        ended = f"failed ({error.get('type')}: {' '.join(str(error.get('message')).split())})"
    else:
        ended = f"passed (database at {facts.get('revision_after') or 'the revision it shows'})"
    advice = "free space there" if isinstance(exc, OSError) else "see why"
    kept = "its notebook could not be kept elsewhere either"
    with contextlib.suppress(OSError):
        spare = Path(tempfile.gettempdir()) / f"softbee-runbook-unarchived-{stem}.ipynb"
        spare.write_bytes(notebook)
        kept = f"its notebook is kept at {spare}"
    return (f"runbook {runbook!r} {ended}, but could NOT be archived in {directory}: "
            f"{getattr(exc, 'strerror', None) or exc}; nothing of it is in the archive (its "
            f"index is unchanged), {kept}: {advice} and run it again if the archive must hold it")


def _append(directory: Path, notebook_path: Path, html_path: Path, rendered: Any,
            notebook_bytes: bytes, facts: Mapping[str, Any], error: Mapping[str, Any] | None,
            publish: Any, *, run_id: str, runbook: str, started: dt.datetime, finished: dt.datetime,
            parameters: Mapping[str, Any], project: Path) -> dict[str, Any]:
    record: dict[str, Any] = {
        "run_id": run_id,
        "runbook": runbook,
        "status": "failed" if error else "passed",
        "started_at": _iso(started),
        "finished_at": _iso(finished),
        "duration_s": round((finished - started).total_seconds(), 3),
        "parameters": dict(parameters),
        "database": database_identity(facts.get("database")),
        "environment": facts.get("environment"),
        "revision_before": facts.get("revision_before"),
        "revision_after": facts.get("revision_after"),
        "row_counts": facts.get("row_counts") or [],
        "outcome": facts.get("outcome"),
        "extra_facts": {k: v for k, v in facts.items() if k not in FACT_KEYS},
        "error": dict(error) if error else None,
        "user": _os_user(),
        "host": socket.gethostname(),
        "project_dir": str(project),
        "git_commit": git_commit(project),
        "notebook": notebook_path.relative_to(directory).as_posix(),
        "html": html_path.relative_to(directory).as_posix(),
        "stylesheet": rendered.stylesheet_name,
        "notebook_sha256": hashlib.sha256(notebook_bytes).hexdigest(),
        "html_sha256": hashlib.sha256(rendered.html).hexdigest(),
        "stylesheet_sha256": hashlib.sha256(rendered.stylesheet).hexdigest(),
    }
    return append_record(directory, record, before=publish)


def list_runs(
    directory: Path,
    runbook: str | None = None,
    status: str | None = None,
    since: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """The records matching every filter given, oldest first."""
    runs = []
    for record in read_index(directory):
        if runbook is not None and record.get("runbook") != runbook:
            continue
        if status is not None and record.get("status") != status:
            continue
        if since is not None:
            started = parse_iso(record.get("started_at"))
            if started is None or started < since:
                continue
        runs.append(record)
    return runs


def find_run(directory: Path, run_id: str) -> ArchivedRun:
    """The run whose id is ``run_id`` (or starts with it, when only one does)."""
    records = read_index(directory)
    matches = [r for r in records if r.get("run_id") == run_id]
    if not matches:
        matches = (
            [r for r in records if str(r.get("run_id", "")).startswith(run_id)] if run_id else []
        )
    if not matches:
        raise ArchiveError(
            f"no run {run_id!r} in {directory / INDEX_NAME}: see softbee-runbook archive list"
        )
    if len(matches) > 1:
        ids = ", ".join(str(r.get("run_id")) for r in matches[:5])
        raise ArchiveError(f"run id {run_id!r} is ambiguous ({ids}): give more characters")
    record = matches[0]
    return ArchivedRun(
        record=record,
        notebook=directory / str(record.get("notebook", "")),
        html=directory / str(record.get("html", "")),
    )


def database_identity(value: Any) -> dict[str, Any] | None:
    """Dialect, host, port and database from a recorded fact: never a password.

    The shipped runbooks record ``project.identity()`` (a dict). A runbook of one's
    own (``$SOFTBEE_RUNBOOKS_DIR``) may record the URL instead, as the toy ``leaky``
    runbook in the tests does: it is parsed and only those four parts kept.
    """
    if isinstance(value, Mapping):
        return {key: value.get(key) for key in _IDENTITY_KEYS}
    if isinstance(value, str) and value:
        from sqlalchemy.engine import make_url

        try:
            url = make_url(normalise_url(value))
        except Exception:  # noqa: BLE001 - an unparseable fact is simply not an identity
            return None
        return {
            "dialect": url.get_backend_name(),
            "host": url.host,
            "port": url.port,
            "database": url.database,
        }
    return None


def git_commit(project_dir: Path) -> str | None:
    """``git rev-parse HEAD`` in ``project_dir``; None outside a repository or on any trouble."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=project_dir,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) >= 40 else None


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _os_user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is not worth failing a run over
        return None
