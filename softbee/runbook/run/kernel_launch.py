"""``python -m softbee.runbook.run.kernel_launch -f FILE``: ipykernel, the runbook library imported.

:class:`softbee.runbook.run.kernel.RunKernel` launches a headless run's kernel with this
module in place of ``ipykernel_launcher`` (same interpreter, same arguments). Before
the kernel starts, it imports the ``softbee.runbook`` modules named in
``SOFTBEE_RUNBOOK_PRELOAD`` (the ones the notebook's cells import), so they load while
the CLI is still importing papermill, instead of in the first cells. Only modules are
loaded: nothing is added to the notebook's namespace, and nothing of the project (its
app, its database) is touched. A module that fails to import is left alone: the cell
that imports it raises the same error, in the notebook where it belongs. When the
kernel has stopped, the process ends without Python's final clean-up of its memory
(:func:`exit_now`): a second or more saved per run, and nothing a run records.
The imports and the kernel's set-up run with the garbage collector paused
(:func:`~softbee.runbook.util.gcpause.imports_without_gc`); it is back on for the cells.
"""

from __future__ import annotations

import atexit
import os
import pkgutil
import sys
import threading
from collections.abc import Iterable
from pathlib import Path

PRELOAD_ENV = "SOFTBEE_RUNBOOK_PRELOAD"
LIBRARY = "softbee.runbook"
#: Libraries every Flask-Migrate project's app imports when the set-up cell loads it
#: (dependencies of softbee.runbook itself): preloaded with the library's modules.
STACK = ("flask_sqlalchemy", "flask_migrate")
#: The IPython extension every headless kernel loads (:mod:`softbee.runbook.run.cells`).
CELLS = "softbee.runbook.run.cells"


def preload(names: Iterable[str]) -> list[str]:
    """Import each of ``names`` that is ours to import; the ones that imported.

    Only the library's modules (``softbee.runbook...``, a module or a name in one) and
    :data:`STACK`: a project's own modules may act on import, so they are left to the cells.
    """
    loaded = []
    for name in names:
        if not (name in STACK or name == LIBRARY or name.startswith(LIBRARY + ".")):
            continue
        try:
            pkgutil.resolve_name(name)
        except Exception:  # noqa: BLE001, S112 - the cell importing it will say why
            continue
        loaded.append(name)
    return loaded


def main() -> None:
    """What ``ipykernel_launcher`` does, with the preload between its two steps."""
    # As ipykernel_launcher: the working directory leaves sys.path while the kernel loads
    # (IPython puts it back for the cells).
    if sys.path and (sys.path[0] == "" or Path(sys.path[0]) == Path.cwd()):
        del sys.path[0]
    from softbee.runbook.util.gcpause import imports_without_gc

    with imports_without_gc():  # the collector runs again before the first cell
        preload(filter(None, os.environ.pop(PRELOAD_ENV, "").split(",")))
        without_debugger()

        from ipykernel import kernelapp

        sys.argv.append(f"--ext={CELLS}")  # one-line errors and plain tables from the first cell
        # kernelapp.launch_new_instance(), in its two steps
        app = kernelapp.IPKernelApp.instance()
        app.initialize()
    app.start()
    exit_now(app)


def without_debugger() -> None:
    """Start the kernel without offering a debugger: nobody attaches one to a headless run.

    ipykernel imports debugpy to offer one (0.1 to 0.2 s); it decides once, when
    ``ipykernel.debugger`` is imported, which happens here with debugpy out of reach.
    debugpy is back in reach before any cell runs, so a cell may still import it.
    """
    saved = sys.modules.get("debugpy")
    sys.modules["debugpy"] = None  # type: ignore[assignment] # an import of it now fails
    try:
        import ipykernel.debugger  # noqa: F401 - records that debugpy is not available
    except Exception:  # noqa: BLE001, S110 - an ipykernel without it: nothing to decide
        pass
    finally:
        if saved is None:
            sys.modules.pop("debugpy", None)
        else:
            sys.modules["debugpy"] = saved


def exit_now(app: object) -> None:
    """Leave as Python would once the kernel has stopped, without what only costs time.

    Threads a cell started are waited for (non-daemon ones, as at any exit), the atexit
    handlers run (IPython's, logging's, the project's), stdout and stderr are flushed;
    then the process ends. Two things are left out:

    * ipykernel's own atexit handlers, which stop its IOPub thread and then join its
      control thread; that thread may still be flushing output through the IOPub thread
      after answering the shutdown request, and waits 10 s for it (seen 1 exit in 10 on
      the loaded machine). Their sockets and threads end with the process anyway.
    * Python's final clean-up, collecting every object and tearing every module down:
      1 to 2 s of CPU on the loaded 2-core machine with pandas, SQLAlchemy and an app
      loaded, for memory that is about to be returned.

    The database sees what it sees at any exit: the project's pooled connections are
    idle (rolled back) and simply close.
    """
    run_exit_functions = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_functions is None:  # not CPython: exit the ordinary way
        return
    for handler in (getattr(app, "close", None),
                    getattr(getattr(app, "iopub_thread", None), "stop", None)):
        if handler is not None:
            atexit.unregister(handler)
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    run_exit_functions()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # noqa: BLE001, S112 - a closed stream has nothing left to write
            continue
    os._exit(0)


if __name__ == "__main__":
    main()
