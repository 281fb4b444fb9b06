"""Run a runbook: check its parameters, execute it with papermill, redact it, archive it.

Secrets never enter the notebook: papermill gets the masked parameters and the
kernel the real values through its environment (:mod:`softbee.runbook.secrets`).
Papermill's working copy, saved after every cell, lives in a private temporary
directory (mode 0700, in the system temp dir) and every save of it is redacted
before it reaches the disk, in case a cell printed a secret it read from the
environment. The directory is deleted once the run is over, passed, failed or
interrupted; after a SIGKILL what is left of it holds only masked values. The
archived copy is redacted again. A runbook that raises is still archived
(papermill's error cell at the top kept) with status ``failed`` and the error named.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from softbee.runbook import archive
from softbee.runbook.catalog import check_parameters, find_runbook, first_line
from softbee.runbook.redact import Redactor
from softbee.runbook.secrets import hide

if TYPE_CHECKING:  # papermill and nbformat take seconds to import: not before parameters pass
    import nbformat

KERNEL_NAME = "python3"
# The kernel's own log (its TCP-without-encryption warning, the interrupt papermill sends
# after a failing cell) is noise on the operator's terminal; cell errors are in the notebook.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]
ERROR_MARKER_TAG = "papermill-error-cell-tag"
#: papermill writes the working copy through this I/O scheme, which redacts every save.
REDACTED_SCHEME = "softbee-redacted://"
_MESSAGE_LIMIT = 500


@dataclass(frozen=True)
class Execution:
    """An executed notebook as papermill left it (not yet redacted) and its error, if any."""

    nb: nbformat.NotebookNode
    error: dict[str, Any] | None


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
    """Validate, execute, redact and archive the runbook ``name``; failures are archived too."""
    runbook = find_runbook(name)
    parameters = check_parameters(runbook, values=values, texts=texts)
    target = archive.archive_dir(archive_dir)
    archive.check_writable(target)
    project = Path(cwd if cwd is not None else os.getcwd()).absolute()

    redactor = Redactor.for_run(parameters, _run_environment(project, environ))
    hidden = hide(parameters)
    run_id = new_run_id()
    started = _now()
    execution = execute(
        runbook.path,
        hidden.parameters,
        cwd=project,
        progress=progress,
        kernel_environ=hidden.environ,
        redactor=redactor,
    )
    finished = _now()

    return archive.archive_run(
        redactor.notebook(execution.nb),
        directory=target,
        runbook=runbook.name,
        run_id=run_id,
        started=started,
        finished=finished,
        parameters=redactor.parameters(parameters),
        error=redactor.value(execution.error) if execution.error else None,
        project_dir=project,
    )


def execute(
    path: Path,
    parameters: Mapping[str, Any],
    *,
    cwd: Path,
    progress: bool = False,
    kernel_environ: Mapping[str, str] | None = None,
    redactor: Redactor | None = None,
) -> Execution:
    """Execute ``path`` with papermill in ``cwd``; an error is returned, not raised.

    ``kernel_environ`` is added to the kernel's environment; ``redactor`` masks every
    save of papermill's working copy before it is written.
    """
    import nbformat
    import papermill

    from papermill.exceptions import PapermillExecutionError

    with (
        tempfile.TemporaryDirectory(prefix="softbee-runbook-") as scratch,
        _quiet_papermill(),
        _redacted_saves(Path(scratch) / path.name, redactor or Redactor()) as target,
        _kernel_environment(kernel_environ or {}),
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
                extra_arguments=KERNEL_ARGUMENTS,
                record_timing=False,  # papermill's own start, end and duration per cell are kept
            )
            return Execution(nb=nb, error=None)
        except PapermillExecutionError as exc:
            nb = nbformat.read(str(output), as_version=4)
            return Execution(nb=nb, error=describe_error(nb, exc.ename, exc.evalue, exc.exec_count))
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - kernel died, timeout, ^C
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
    message = evalue if len(evalue) <= _MESSAGE_LIMIT else evalue[: _MESSAGE_LIMIT - 3] + "..."
    return {
        "type": ename,
        "message": message,
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


class _RedactingHandler:
    """papermill's I/O for :data:`REDACTED_SCHEME` paths: local files, every write redacted."""

    def __init__(self) -> None:
        self.redactors: dict[str, Redactor] = {}

    def read(self, path: str) -> str:
        return Path(_local(path)).read_text(encoding="utf-8")

    def write(self, buf: str, path: str) -> None:
        local = _local(path)
        redactor = self.redactors.get(local)
        if redactor is not None:
            buf = json.dumps(redactor.value(json.loads(buf)), indent=1, sort_keys=True,
                             ensure_ascii=False) + "\n"
        Path(local).write_text(buf, encoding="utf-8")

    def listdir(self, path: str) -> list[str]:
        return [str(p) for p in Path(_local(path)).iterdir()]

    def pretty_path(self, path: str) -> str:
        return _local(path)


_HANDLER = _RedactingHandler()


def _local(path: str) -> str:
    return path[len(REDACTED_SCHEME):] if path.startswith(REDACTED_SCHEME) else path


@contextmanager
def _redacted_saves(output: Path, redactor: Redactor) -> Iterator[str]:
    """Have papermill save ``output`` through ``redactor``; yields the path to give papermill."""
    from papermill.iorw import papermill_io

    if papermill_io.get_handler(REDACTED_SCHEME) is not _HANDLER:
        papermill_io.register(REDACTED_SCHEME, _HANDLER)
    _HANDLER.redactors[str(output)] = redactor
    try:
        yield REDACTED_SCHEME + str(output)
    finally:
        _HANDLER.redactors.pop(str(output), None)


@contextmanager
def _kernel_environment(extra: Mapping[str, str]) -> Iterator[None]:
    """Variables the kernel inherits (jupyter_client copies ``os.environ`` at launch)."""
    saved = {name: os.environ.get(name) for name in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _KnownParameters(logging.Filter):
    """Drop papermill's "Passed unknown parameter" warning: the catalog already checked them.

    Papermill's regex cannot read annotations like ``str | None`` and would warn about
    parameters the catalog recovered and validated.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Passed unknown parameter")


class _KernelShutdownRace(logging.Filter):
    """Drop tornado's "Socket operation on non-socket" traceback from ipykernel's shutdown.

    A known race when the kernel's sockets close under a pending read: the run's
    outcome is already decided and in the notebook; the traceback only alarms operators.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return "Socket operation on non-socket" not in f"{record.getMessage()} {error}"


@contextmanager
def _quiet_papermill() -> Iterator[None]:
    filters = [(logging.getLogger("papermill"), _KnownParameters()),
               (logging.getLogger("tornado.general"), _KernelShutdownRace())]
    for logger, quiet in filters:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for logger, quiet in filters:
            logger.removeFilter(quiet)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
