"""papermill, set up for a run: its engine, saves that are redacted, its log filters.

- :func:`_engine`: papermill's nbclient engine, minus the saves around markdown cells.
- :data:`REDACTED_SCHEME` and :func:`_redacted_saves`: papermill saves its working copy
  through an I/O handler that redacts every write before it reaches the disk.
- :func:`_quiet_papermill`: drops two log lines that would only alarm an operator.

Used by :mod:`softbee.runbook.run.execute` only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from softbee.runbook.util.redact import Redactor

#: papermill writes the working copy through this I/O scheme, which redacts every save.
REDACTED_SCHEME = "softbee-redacted://"
#: The papermill engine runs use (:func:`_engine`): papermill's own, saving less.
ENGINE_NAME = "softbee"


def _engine() -> str:
    """Register (once) and name papermill's nbclient engine, minus the saves around markdown.

    Papermill saves its working copy when each cell starts and when it completes,
    markdown cells included, and the next cell waits for the save (serialised,
    validated, redacted, written). A markdown cell changes nothing worth saving: its
    start and end are recorded in the next save. That is half the saves of a runbook,
    whose steps are each a heading and a cell.
    """
    from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines

    if ENGINE_NAME in papermill_engines._engines:
        return ENGINE_NAME

    class Manager(NotebookExecutionManager):  # type: ignore[misc]
        skip_save = False

        def cell_start(self, cell: Any, cell_index: int | None = None, **kwargs: Any) -> None:
            self.skip_save = cell.cell_type != "code"
            try:
                super().cell_start(cell, cell_index, **kwargs)
            finally:
                self.skip_save = False

        def cell_complete(self, cell: Any, cell_index: int | None = None, **kwargs: Any) -> None:
            self.skip_save = cell.cell_type != "code"
            try:
                super().cell_complete(cell, cell_index, **kwargs)
            finally:
                self.skip_save = False

        def save(self, **kwargs: Any) -> None:
            if self.skip_save:
                return
            if kwargs.get("nb"):  # papermill's catch_nb_assignment
                self.nb = kwargs["nb"]
            if self.output_path and _HANDLER.save(self.nb, self.output_path):
                self.last_save_time = self.now()
                return
            super().save(**kwargs)

    class Engine(NBClientEngine):  # type: ignore[misc]
        @classmethod
        def execute_notebook(cls, nb: Any, kernel_name: str, output_path: str | None = None,
                             progress_bar: bool = True, log_output: bool = False,
                             autosave_cell_every: int = 30, **kwargs: Any) -> Any:
            # papermill's Engine.execute_notebook, with the Manager above
            manager = Manager(nb, output_path=output_path, progress_bar=progress_bar,
                              log_output=log_output, autosave_cell_every=autosave_cell_every)
            manager.notebook_start()
            try:
                cls.execute_managed_notebook(manager, kernel_name, log_output=log_output,
                                             **kwargs)
            finally:
                manager.cleanup_pbar()
                manager.notebook_complete()
            return manager.nb

    papermill_engines.register(ENGINE_NAME, Engine)
    return ENGINE_NAME


class _RedactingHandler:
    """papermill's I/O for :data:`REDACTED_SCHEME` paths: local files, every write redacted.

    The engine's saves come through :meth:`save` with the notebook itself: papermill would
    serialise it (a deep copy, a schema validation, JSON with indents written by Python's
    slow encoder), and the write would parse that text again to redact it. :meth:`save`
    redacts a copy of the notebook and writes it once, byte for byte what the two steps
    wrote; papermill's own writes (its first and last) still come through :meth:`write`.
    """

    def __init__(self) -> None:
        self.redactors: dict[str, Redactor] = {}

    def save(self, nb: Any, path: str) -> bool:
        """Write ``nb``, redacted, to ``path``; False when ``path`` is not a redacted save."""
        local = _local(path)
        redactor = self.redactors.get(local) if path.startswith(REDACTED_SCHEME) else None
        if redactor is None:
            return False
        from nbformat.v4.rwbase import split_lines, strip_transient

        masked = strip_transient(split_lines(redactor.value(nb)))  # a copy: nb is left as it is
        Path(local).write_text(json.dumps(masked, indent=1, sort_keys=True, ensure_ascii=False)
                               + "\n", encoding="utf-8")
        return True

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
    return path.removeprefix(REDACTED_SCHEME)


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
