"""Run a runbook: check its parameters, execute it with papermill, redact it, archive it.

Secrets never enter the notebook: papermill gets the masked parameters and the
kernel the real values through its environment (:mod:`softbee.runbook.util.secrets`).
Papermill's working copy, saved after every cell, lives in a private temporary
directory (mode 0700, in the system temp dir) and every save of it is redacted
before it reaches the disk, in case a cell printed a secret it read from the
environment. The directory is deleted once the run is over, passed, failed or
interrupted; after a SIGKILL what is left of it holds only masked values. The
archived copy is redacted again. A runbook that raises is still archived
(papermill's error cell at the top kept) with status ``failed`` and the error named.

A run is three steps, so that a fleet worker can repeat the last two per target:
:func:`prepare_run` (the runbook found, its parameters checked, what the kernel should
preload), :func:`start_kernel` (a kernel launched for one run, with that run's
environment: :mod:`softbee.runbook.run.kernel`) and :func:`run_prepared` (execute, archive,
stop the kernel). :func:`run_runbook` does the three for one run; the kernel is
launched before papermill is even imported, so both start up side by side.

How papermill is set up for a run (its engine, the redacting saves, the log filters) is
:mod:`softbee.runbook.run.papermill_setup`.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from softbee.runbook import archive
from softbee.runbook.run.banner import ERROR_MARKER_TAG, quiet_banner
from softbee.runbook.run.catalog import (
    Runbook,
    check_parameters,
    find_runbook,
    first_line,
    read_cells,
)
from softbee.runbook.run.kernel import KERNEL_NAME, RunKernel, library_imports
from softbee.runbook.run.papermill_setup import (
    _engine,
    _quiet_papermill,
    _redacted_saves,
)
from softbee.runbook.util.gcpause import imports_without_gc
from softbee.runbook.util.history_name import RUN_ID_ENV, RUNBOOK_ENV
from softbee.runbook.util.redact import Redactor
from softbee.runbook.util.secrets import Hidden, hide

if TYPE_CHECKING:  # papermill and nbformat take seconds to import: not before parameters pass
    import nbformat

__all__ = ["KERNEL_NAME", "PreparedRun", "prepare_run", "run_prepared", "run_runbook",
           "start_kernel"]



@dataclass(frozen=True)
class Execution:
    """An executed notebook as papermill left it (not yet redacted) and its error, if any."""

    nb: nbformat.NotebookNode
    error: dict[str, Any] | None


@dataclass(frozen=True)
class PreparedRun:
    """A runbook whose parameters passed, ready to run once, or once per fleet target."""

    runbook: Runbook
    parameters: dict[str, Any]
    hidden: Hidden  # the parameters as papermill sees them, the secrets for the kernel
    archive_dir: Path
    project: Path
    preload: tuple[str, ...]  # the library modules the kernel imports before it is ready
    progress: bool = False
    write_page: bool = True  # rebuild the auditors' page after archiving (a fleet: at its end)


def prepare_run(
    name: str,
    *,
    values: Mapping[str, Any] | None = None,
    texts: Mapping[str, str] | None = None,
    archive_dir: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    progress: bool = False,
    write_page: bool = True,
) -> PreparedRun:
    """Find the runbook and check everything that can be checked before a kernel starts."""
    runbook = find_runbook(name)
    parameters = check_parameters(runbook, values=values, texts=texts)
    target = archive.archive_dir(archive_dir)
    archive.check_writable(target)
    code = [cell["source"] for cell in read_cells(runbook.path) if cell.get("cell_type") == "code"]
    return PreparedRun(
        runbook=runbook,
        parameters=parameters,
        hidden=hide(parameters),
        archive_dir=target,
        project=Path(cwd if cwd is not None else os.getcwd()).absolute(),
        preload=tuple(library_imports(code)),
        progress=progress,
        write_page=write_page,
    )


def start_kernel(prepared: PreparedRun, environ: Mapping[str, str] | None = None) -> RunKernel:
    """Launch the kernel for one run of ``prepared``: ``environ`` (default: this process's) plus
    the run's secrets, in the project folder, its library modules imported first.

    The kernel is given the run's id (``SOFTBEE_RUN_ID``), which its history rows and its
    archived record share."""
    with imports_without_gc(freeze=False):  # jupyter_client, the first time
        return RunKernel.start(
            cwd=prepared.project,
            environ={**(os.environ if environ is None else environ), RUN_ID_ENV: new_run_id(),
                     RUNBOOK_ENV: prepared.runbook.name},
            preload=prepared.preload,
            extra_environ=prepared.hidden.environ,
        )


def run_prepared(
    prepared: PreparedRun,
    kernel: RunKernel | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    started: dt.datetime | None = None,
) -> archive.ArchivedRun:
    """Execute, redact and archive one run of ``prepared``; failures are archived too.

    ``kernel`` is one :func:`start_kernel` made for this run (else one is started with
    ``environ``); it is stopped before this returns, and never used again. The run is
    rendered and archived while the kernel shuts down.
    """
    started = started or _now()
    kernel = kernel or start_kernel(prepared, environ)
    try:
        # The kernel is starting: what is left to prepare here is done beside it, and the
        # page's templates beside papermill, which then mostly waits for the kernel.
        with imports_without_gc(freeze=False):
            redactor = Redactor.for_run(prepared.parameters,
                                        _run_environment(prepared.project, kernel.environ))
            import papermill  # noqa: F401 - imported here, while the kernel starts

            from softbee.runbook.archive import render

        warming = render.warm_beside()
        execution = execute(
            prepared.runbook.path,
            prepared.hidden.parameters,
            cwd=prepared.project,
            progress=prepared.progress,
            kernel=kernel,
            redactor=redactor,
        )
        finished = _now()
        warming.join(render.WARM_WAIT_S)  # bounded: else the page is rendered without it
        return archive.archive_run(
            redactor.notebook(execution.nb),
            directory=prepared.archive_dir,
            runbook=prepared.runbook.name,
            run_id=kernel.environ.get(RUN_ID_ENV) or new_run_id(),
            started=started,
            finished=finished,
            parameters=redactor.parameters(prepared.parameters),
            error=redactor.value(execution.error) if execution.error else None,
            project_dir=prepared.project,
            write_page=prepared.write_page,
        )
    finally:
        kernel.shutdown()


def run_runbook(
    name: str,
    *,
    values: Mapping[str, Any] | None = None,
    texts: Mapping[str, str] | None = None,
    archive_dir: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    progress: bool = False,
    environ: Mapping[str, str] | None = None,
) -> archive.ArchivedRun:
    """Validate, execute, redact and archive the runbook ``name``; failures are archived too.

    ``environ`` is the environment the kernel starts with (default: this process's).
    """
    prepared = prepare_run(name, values=values, texts=texts, archive_dir=archive_dir, cwd=cwd,
                           progress=progress)
    started = _now()
    return run_prepared(prepared, start_kernel(prepared, environ), started=started)


def execute(
    path: Path,
    parameters: Mapping[str, Any],
    *,
    cwd: Path,
    progress: bool = False,
    kernel: RunKernel | None = None,
    redactor: Redactor | None = None,
) -> Execution:
    """Execute ``path`` with papermill in ``cwd``; an error is returned, not raised.

    ``kernel`` is the run's own kernel (:func:`start_kernel`); without one, a kernel is
    started here with this process's environment, and stopped before this returns.
    ``redactor`` masks every save of papermill's working copy before it is written. When
    the cells are done the kernel is asked to shut down; the caller waits for it.
    """
    owned = kernel is None
    if kernel is None:
        kernel = RunKernel.start(cwd=cwd, environ=dict(os.environ))
    try:
        return _execute(path, parameters, cwd=cwd, progress=progress, kernel=kernel,
                        redactor=redactor)
    finally:
        if owned:
            kernel.shutdown()


def _execute(
    path: Path,
    parameters: Mapping[str, Any],
    *,
    cwd: Path,
    progress: bool,
    kernel: RunKernel,
    redactor: Redactor | None,
) -> Execution:
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    with (
        tempfile.TemporaryDirectory(prefix="softbee-runbook-") as scratch,
        _quiet_papermill(),
        _redacted_saves(Path(scratch) / path.name, redactor or Redactor()) as target,
    ):
        output = Path(scratch) / path.name
        try:
            nb = papermill.execute_notebook(
                str(path),
                target,
                parameters=dict(parameters),
                kernel_name=KERNEL_NAME,
                progress_bar=progress,
                log_output=False,
                cwd=str(cwd),
                km=kernel.manager,
                engine_name=_engine(),
                record_timing=False,  # papermill's own start, end and duration per cell are kept
            )
            kernel.request_shutdown()  # idle: it stops while the run is archived
            return Execution(nb=nb, error=None)
        except PapermillExecutionError as exc:
            kernel.request_shutdown()
            nb = quiet_banner(nbformat.read(str(output), as_version=4), exc.ename)
            return Execution(nb=nb, error=describe_error(nb, exc.ename, exc.evalue, exc.exec_count))
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - kernel died, timeout, ^C
            kernel.shutdown()  # it may be mid-cell: interrupted, then stopped
            source = output if output.is_file() else path
            nb = nbformat.read(str(source), as_version=4)
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return Execution(nb=nb, error=describe_error(nb, type(exc).__name__, message, None))


def describe_error(
    nb: nbformat.NotebookNode, ename: str, evalue: str, exec_count: int | None
) -> dict[str, Any]:
    """The error as the index stores it: type, message, failing cell and runbook step."""
    cell_index, step = None, None
    heading = None
    for index, cell in enumerate(nb.cells):
        if ERROR_MARKER_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        if cell.cell_type == "markdown":
            heading = first_line(cell.source) or heading
        elif any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            cell_index, step = index, heading
            break
    return {  # the whole message: its advice, a command to copy, comes last and is never cut
        "type": ename,
        "message": evalue,
        "cell": cell_index,
        "execution_count": exec_count,
        "step": step,
    }


def _run_environment(project: Path, environ: Mapping[str, str] | None) -> dict[str, str]:
    """The variables the kernel saw: the process environment plus the project's ``.env``."""
    from dotenv import dotenv_values

    values = {k: v for k, v in dotenv_values(project / ".env").items() if v is not None}
    return {**values, **(os.environ if environ is None else environ)}


def new_run_id() -> str:
    """A short random run id (12 hex digits)."""
    return uuid.uuid4().hex[:12]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
