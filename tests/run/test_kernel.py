"""kernel: a run's kernel starts warm (the library imported, nothing in the namespace) and stops."""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from pathlib import Path

import pytest

from softbee.runbook.run import kernel_launch
from softbee.runbook.run.kernel import RunKernel, library_imports, with_launcher
from tests.helpers import HUNG_AFTER_S, REPO_ROOT

LIBRARY_CELL = "from softbee.runbook.archive.summary import record\nimport softbee.runbook.review.counts"


def test_library_imports_names_what_the_cells_import_from_the_library_in_order():
    cells = [
        "import os, pandas as pd",
        LIBRARY_CELL,
        "from softbee.runbook import load_project\nfrom .local import thing",
        "this is not python",
        "from softbee.runbook.archive.summary import record  # again",
    ]

    assert library_imports(cells) == [
        "softbee.runbook.archive.summary.record", "softbee.runbook.review.counts",
        "softbee.runbook.load_project", *kernel_launch.STACK,  # it loads an app: its stack too
    ]
    assert library_imports(["import flask", "x = 1"]) == []


def test_only_ipykernels_own_launcher_is_replaced():
    assert with_launcher(["python", "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f",
                          "c.json"]) == ["python", "-m", "softbee.runbook.run.kernel_launch", "-f",
                                         "c.json"]  # no debugger: frozen modules may stay on
    other = ["/opt/kernel", "-Xfrozen_modules=off", "--connection", "c.json"]
    assert with_launcher(other) == other


def test_preload_imports_the_library_and_its_stack_and_nothing_of_the_project():
    loaded = kernel_launch.preload([
        "softbee.runbook.archive.summary.record", "softbee.runbook.no_such_module", "tests.helpers",
        "os.path", "flask_sqlalchemy"])

    assert loaded == ["softbee.runbook.archive.summary.record", "flask_sqlalchemy"]


def _execute(kernel: RunKernel, code: str) -> str:
    """Run ``code`` in the kernel, through a client of its manager (as nbclient does); stdout."""
    from jupyter_core.utils import run_sync

    client = kernel.manager.client()

    async def run() -> str:
        client.start_channels()
        await client.wait_for_ready(timeout=HUNG_AFTER_S)
        msg_id = client.execute(code)
        out = []
        while True:
            message = await client.get_iopub_msg(timeout=HUNG_AFTER_S)
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "stream":
                out.append(message["content"]["text"])
            elif message["msg_type"] == "error":
                out.append(f"ERROR {message['content']['ename']}")
            elif (message["msg_type"] == "status"
                  and message["content"]["execution_state"] == "idle"):
                return "".join(out)

    return run_sync(run)()


PROBE = (
    "import json, os, sys\n"
    "names = sorted(k for k in globals() if not k.startswith('_') and k not in "
    "('In', 'Out', 'exit', 'quit', 'get_ipython', 'open'))\n"
    "import debugpy\n"
    "print(json.dumps({'names': names, 'library': 'softbee.runbook.archive.summary' in sys.modules,"
    " 'stack': 'flask_sqlalchemy' in sys.modules, 'project': 'tests.helpers' in sys.modules,"
    " 'preload_env': os.environ.get('SOFTBEE_RUNBOOK_PRELOAD'),"
    " 'mine': os.environ.get('KERNEL_TEST_VALUE'), 'secret': os.environ.get('KERNEL_TEST_EXTRA'),"
    " 'pid': os.getpid()}))\n"
)


@pytest.mark.notebook
def test_a_warm_kernel_has_the_library_imported_and_an_empty_namespace():
    preload = [*library_imports([LIBRARY_CELL, "from softbee.runbook import load_project"]),
               "tests.helpers"]
    kernel = RunKernel.start(cwd=REPO_ROOT, environ={**os.environ, "KERNEL_TEST_VALUE": "one"},
                             preload=preload, extra_environ={"KERNEL_TEST_EXTRA": "two"})
    cold = RunKernel.start(cwd=REPO_ROOT, environ=dict(os.environ))
    pid = kernel.pid
    try:
        warm_seen = json.loads(_execute(kernel, PROBE))
        cold_seen = json.loads(_execute(cold, PROBE))
    finally:
        kernel.shutdown()
        cold.shutdown()

    assert kernel.warm and not cold.warm
    assert warm_seen["library"] and warm_seen["stack"] and not cold_seen["library"]
    assert not warm_seen["project"]  # a project's modules are left to its cells
    assert warm_seen["names"] == cold_seen["names"]  # modules only: no variable came with them
    assert warm_seen["preload_env"] is None  # the list is not left for the cells to see
    assert (warm_seen["mine"], warm_seen["secret"]) == ("one", "two")
    assert warm_seen["pid"] == pid != cold_seen["pid"]


@pytest.mark.notebook
def test_a_kernel_asked_to_stop_exits_and_leaves_no_connection_file():
    kernel = RunKernel.start(cwd=REPO_ROOT, environ=dict(os.environ),
                             preload=library_imports([LIBRARY_CELL]))
    pid = json.loads(_execute(kernel, PROBE))["pid"]
    connection_file = Path(kernel.manager.connection_file)

    kernel.request_shutdown()
    kernel.shutdown()

    deadline = time.monotonic() + HUNG_AFTER_S
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)
    assert not connection_file.exists()
    assert kernel.manager.clients == []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_the_launcher_is_ipykernels_own_with_the_preload_between(monkeypatch):
    """The working directory leaves sys.path first, as ipykernel_launcher does; the collector
    is paused for the imports and the kernel's set-up, and back on when it starts."""
    calls = []
    monkeypatch.setattr(sys, "path", ["", *sys.path])
    monkeypatch.setenv(kernel_launch.PRELOAD_ENV, "softbee.runbook.archive.summary")
    monkeypatch.setattr(kernel_launch, "preload", lambda names: calls.append(
        ("preload", list(names), sys.path[0])))
    monkeypatch.setattr(kernel_launch, "without_debugger", lambda: calls.append(("debugger",)))
    monkeypatch.setattr(kernel_launch, "exit_now", lambda app: calls.append(("exit", app)))
    import ipykernel.kernelapp

    class App:  # what launch_new_instance does: initialize, then start
        def initialize(self) -> None:
            calls.append(("initialize", "collector on" if gc.isenabled() else "collector off"))

        def start(self) -> None:
            calls.append(("start", "collector on" if gc.isenabled() else "collector off"))

    app = App()
    monkeypatch.setattr(ipykernel.kernelapp.IPKernelApp, "instance", staticmethod(lambda: app))
    monkeypatch.setattr(gc, "freeze", lambda: calls.append(("freeze",)))  # not this process's

    kernel_launch.main()

    assert calls[0][:2] == ("preload", ["softbee.runbook.archive.summary"]) and calls[0][2] != ""
    assert calls[1:] == [("debugger",), ("initialize", "collector off"), ("freeze",),
                         ("start", "collector on"), ("exit", app)]
    assert kernel_launch.PRELOAD_ENV not in os.environ
    assert gc.isenabled()


def test_the_kernelspec_found_is_the_one_jupyter_clients_own_search_finds():
    from jupyter_client.kernelspec import KernelSpecManager

    from softbee.runbook.run.kernel import KERNEL_NAME, _manager_class

    ours = _manager_class()(kernel_name=KERNEL_NAME).kernel_spec
    theirs = KernelSpecManager().get_kernel_spec(KERNEL_NAME)

    assert (ours.resource_dir, ours.argv) == (theirs.resource_dir, theirs.argv)


@pytest.mark.notebook
def test_a_kernel_that_ran_nothing_is_discarded_at_once_even_while_it_starts():
    kernel = RunKernel.start(cwd=REPO_ROOT, environ=dict(os.environ),
                             preload=library_imports([LIBRARY_CELL]))
    pid, connection_file = kernel.pid, Path(kernel.manager.connection_file)

    kernel.discard()

    assert not _alive(pid) and not connection_file.exists()
