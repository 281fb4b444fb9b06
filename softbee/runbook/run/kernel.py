"""A headless run's kernel: launched early, warm, and stopped while the run is archived.

Most of a run's fixed cost is its kernel: a Python process that imports IPython, then
the runbook library (Flask, SQLAlchemy, Alembic, pandas) in its first cells. Four
things make that cheaper without sharing anything between runs:

* the kernel is launched as soon as the parameters have passed, before the run
  imports papermill and nbconvert, so the two processes start up side by side;
* it imports the ``softbee.runbook`` modules the notebook's cells import before it
  reports ready (:mod:`softbee.runbook.run.kernel_launch` in place of ``ipykernel_launcher``),
  so the first cells do not wait for them: modules only, the notebook's namespace is
  empty as ever;
* its client is ready as soon as the kernel has answered, without jupyter_client's
  0.2 s wait for a silent IOPub channel (:mod:`softbee.runbook.run.kernel_client`);
* once the last cell is done the kernel is asked to shut down, and the run is
  rendered and archived while it does (:meth:`RunKernel.request_shutdown`, then
  :meth:`RunKernel.shutdown`).

Every run has a kernel of its own, started with that run's environment (its
``DATABASE_URL``, its secrets) and used for that run only. Papermill is handed the
started kernel's manager (``km=``), so it executes exactly as with a kernel of its own.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from softbee.runbook.run.kernel_launch import LIBRARY, PRELOAD_ENV, STACK

if TYPE_CHECKING:
    from jupyter_client.manager import AsyncKernelManager

KERNEL_NAME = "python3"
#: The kernel's own log (its TCP-without-encryption warning, the interrupt sent after a
#: failing cell) is noise on the operator's terminal; cell errors are in the notebook.
#: History in memory, as nbclient sets it for the kernels it starts: nothing on disk.
KERNEL_ARGUMENTS = [
    "--IPKernelApp.log_level=CRITICAL",
    "--HistoryManager.hist_file=:memory:",
]
LAUNCHER = "softbee.runbook.run.kernel_launch"
#: How long a kernel asked to stop may take before SIGTERM, then SIGKILL (half each).
SHUTDOWN_WAIT_S = 5.0
_POLL_S = 0.02


def library_imports(sources: Iterable[str]) -> list[str]:
    """What a kernel for this code should import first: the library names it imports, in order.

    ``from softbee.runbook.engine.migrate import plan_migration`` gives
    ``softbee.runbook.engine.migrate.plan_migration``: :func:`pkgutil.resolve_name` imports the
    module and looks the name up, which is what the cell will do. Code that loads a
    project also gets the Flask-Migrate stack every project's app imports
    (:data:`~softbee.runbook.run.kernel_launch.STACK`). Cells that are not valid Python are
    skipped (the kernel will say why when it runs them).
    """
    names: list[str] = []
    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found = [f"{node.module}.{alias.name}" for alias in node.names
                         if alias.name != "*"]
            else:
                continue
            names += [n for n in found if n.startswith(LIBRARY + ".") and n not in names]
    loads_app = any(n in (f"{LIBRARY}.load_project", f"{LIBRARY}.Project")
                    or n.startswith(f"{LIBRARY}.project") for n in names)
    return [*names, *STACK] if loads_app else names


class RunKernel:
    """One run's kernel: started with the run's environment, for that run only."""

    def __init__(self, manager: AsyncKernelManager, environ: Mapping[str, str],
                 preload: Sequence[str]) -> None:
        self.manager = manager
        #: The environment the kernel was started with, less the variables this module adds.
        self.environ = dict(environ)
        self.preload = tuple(preload)
        self._stopping = False

    @classmethod
    def start(
        cls,
        *,
        cwd: Path,
        environ: Mapping[str, str],
        preload: Sequence[str] = (),
        extra_environ: Mapping[str, str] | None = None,
    ) -> RunKernel:
        """Launch a kernel in ``cwd`` with ``environ`` (plus ``extra_environ``); do not wait.

        ``preload`` names what :mod:`~softbee.runbook.run.kernel_launch` imports first. A
        kernelspec that is not ``python -m ipykernel_launcher`` is launched as it is,
        without the preload. Waiting for it to be ready is papermill's first step.
        """
        from jupyter_core.utils import run_sync

        manager = _manager_class()(kernel_name=KERNEL_NAME)
        manager.shutdown_wait_time = SHUTDOWN_WAIT_S
        manager.preload = tuple(preload)
        env = {**environ, **(extra_environ or {})}
        if preload:
            env[PRELOAD_ENV] = ",".join(preload)
        else:
            env.pop(PRELOAD_ENV, None)
        run_sync(manager.start_kernel)(extra_arguments=list(KERNEL_ARGUMENTS), cwd=str(cwd),
                                       env=env)
        return cls(manager, environ, preload)

    @property
    def pid(self) -> int | None:
        """The kernel process's id (None once it is gone)."""
        process = getattr(self.manager.provisioner, "process", None)
        return getattr(process, "pid", None)

    @property
    def warm(self) -> bool:
        """Whether the kernel was launched through the preloading launcher."""
        return bool(self.preload) and self.manager.launched_warm

    def request_shutdown(self) -> None:
        """Ask the idle kernel to stop (the run's cells are done); return at once."""
        from jupyter_core.utils import run_sync

        if self._stopping or not self.manager.has_kernel:
            return
        self._stopping = True
        try:
            run_sync(self.manager.request_shutdown)()
        except Exception:  # noqa: BLE001 - shutdown() below kills it if it did not hear
            pass

    def discard(self) -> None:
        """Stop a kernel that ran no cell (a fleet's spare): killed, it holds nothing to keep.

        Asking would mean waiting for it to finish starting (it cannot hear before), and
        interrupting it would print a traceback of whatever import it was in.
        """
        import signal

        from jupyter_core.utils import run_sync

        if self._stopping or not self.manager.has_kernel:
            return self.shutdown()
        self._stopping = True
        try:
            run_sync(self.manager.signal_kernel)(signal.SIGKILL)
        except Exception:  # noqa: BLE001, S110 - already gone: shutdown() below tidies up
            pass
        return self.shutdown()

    def shutdown(self) -> None:
        """Stop the kernel and release its sockets and files; bounded, never raises.

        After :meth:`request_shutdown` this waits for the kernel to exit (SIGTERM, then
        SIGKILL if it takes more than :data:`SHUTDOWN_WAIT_S`); otherwise (a run that
        was interrupted, a kernel never used) it interrupts the kernel and asks first,
        as papermill does with the kernels it owns.
        """
        from jupyter_core.utils import run_sync

        manager = self.manager
        try:
            if not manager.has_kernel:
                return
            if not self._stopping:
                self._stopping = True
                run_sync(manager.shutdown_kernel)(now=False)
                return
            run_sync(manager.finish_shutdown)(pollinterval=_POLL_S)
            run_sync(manager.cleanup_resources)()
        except Exception:  # noqa: BLE001 - a kernel already gone: nothing to stop
            try:
                run_sync(manager.shutdown_kernel)(now=True)
            except Exception:  # noqa: BLE001, S110
                pass
        finally:
            for client in manager.clients:
                client.stop_channels()
            manager.clients.clear()


_MANAGER_CLASS: type | None = None


def _manager_class() -> type:
    """jupyter_client's AsyncKernelManager, launching through the preloading launcher."""
    global _MANAGER_CLASS
    if _MANAGER_CLASS is not None:
        return _MANAGER_CLASS
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    from softbee.runbook.run.kernel_client import client_class

    class SpecManager(KernelSpecManager):  # type: ignore[misc]
        """Looks in Jupyter's kernel folders before building the whole list of folders.

        The whole list ends with IPython's legacy folder (``~/.ipython/kernels``), and
        finding it imports IPython (0.07 s before the kernel can be launched). Jupyter's
        folders come first in that list anyway: a spec found there is the one the whole
        list finds. Folders set in a Jupyter config are searched as configured.
        """

        def _find_spec_directory(self, kernel_name: str) -> str | None:
            configured = getattr(self, "trait_has_value", lambda _name: True)("kernel_dirs")
            if not configured:
                from jupyter_core.paths import jupyter_path

                for kernel_dir in jupyter_path("kernels"):
                    path = os.path.join(kernel_dir, kernel_name)
                    if os.path.isfile(os.path.join(path, "kernel.json")):
                        return path
            return super()._find_spec_directory(kernel_name)  # type: ignore[no-any-return]

    class WarmKernelManager(AsyncKernelManager):  # type: ignore[misc]
        """Launches ``-m softbee.runbook.run.kernel_launch``; remembers the clients it made."""

        preload: tuple[str, ...] = ()
        launched_warm = False

        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("kernel_spec_manager", SpecManager())
            kwargs.setdefault("client_factory", client_class())  # ready without 0.2 s idle
            super().__init__(**kwargs)
            self.clients: list[Any] = []

        def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
            command = super().format_kernel_cmd(extra_arguments)
            if not self.preload:
                return command
            warm = with_launcher(command)
            self.launched_warm = warm != command
            return warm

        def client(self, **kwargs: Any) -> Any:
            made = super().client(**kwargs)
            self.clients.append(made)  # nbclient leaves a manager it did not make running
            return made

    _MANAGER_CLASS = WarmKernelManager
    return WarmKernelManager


def with_launcher(command: Sequence[str]) -> list[str]:
    """``command`` with ``-m ipykernel_launcher`` replaced by the preloading launcher.

    ``-Xfrozen_modules=off``, which ipykernel's kernelspec adds for the debugger's sake,
    goes too: the launcher offers no debugger, and frozen modules start faster.
    """
    command = list(command)
    for index in range(len(command) - 1):
        if command[index] == "-m" and command[index + 1] == "ipykernel_launcher":
            command[index + 1] = LAUNCHER
            return [arg for arg in command if arg != "-Xfrozen_modules=off"]
    return command
