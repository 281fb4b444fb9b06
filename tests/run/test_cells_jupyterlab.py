"""In a real JupyterLab, an expected error reads as one line: saved in a failed run, and live.

``jupyter lab`` from the venv (free port, token, a temporary root, its own workspace and
settings folders) is opened in headless chromium and driven over DevTools
(:class:`tests.browser.DevTools`), as a person would use it:

- the notebook a failed headless run archived (``upgrade_downgrade`` given an unknown
  revision) opens with its saved outputs drawn: the error cell is the CLI's one line, and
  no traceback text is on the page;
- a copy of the runbook with the same bad parameter, run with "Run All" in JupyterLab's own
  kernel, shows the same line and stops there: that kernel loads ``run/cells.py`` too.

One server and one browser serve both. It still takes 45 to 90 s on the 2-core machine (the
more, the busier), so it is marked ``lab``: ``make test`` leaves it out, ``make test-lab``
(and ``.ci/run``) runs it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from softbee.runbook.run.execute import run_runbook
from tests.browser import DevTools, chromium
from tests.helpers import HUNG_AFTER_S, REPO_ROOT

pytestmark = [pytest.mark.notebook, pytest.mark.browser, pytest.mark.lab]

ONE_LINE = ("RevisionError: revision 'nosuchrev': Can't locate revision identified by "
            "'nosuchrev' (see `flask db history` for valid ids)")
TRACEBACK_TEXT = ("Traceback", 'File "/', "softbee/runbook/", "raise RevisionError")

_PANEL = "jupyterapp.shell.currentWidget.node"  # the notebook on show, not the other tab
_ERRORS = "'.jp-OutputArea-output[data-mime-type=\"application/vnd.jupyter.stderr\"]'"
_SHOWING = "window.jupyterapp?.shell.currentWidget?.context?.path === '{}'"
_KERNEL_IDLE = ("window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel?.status"
                " === 'idle'")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _seen(panel: str) -> str:
    """A JavaScript expression: the panel's text and each error output's, drawn or scrolled off.

    ``textContent``, not ``innerText``: JupyterLab skips drawing cells scrolled out of view
    (``content-visibility``), and their text must count too.
    """
    return (f"({{text: {panel}.textContent, errors: Array.from({panel}.querySelectorAll("
            f"{_ERRORS})).map(e => e.textContent)}})")


@pytest.fixture
def lab_root(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """``jupyter lab`` serving ``tmp_path/root`` (not yet answering): its URL, token and root."""
    chromium()  # skipped (or failed under CI=true) before a server starts for nothing
    root, port, token = tmp_path / "root", _free_port(), uuid.uuid4().hex
    root.mkdir()
    news = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)  # no "get notified about news?" box over the page
    (news / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = {**os.environ, "SOFTBEE_PROJECT_ROOT": str(REPO_ROOT),  # as `make lab` sets it
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    command = [str(Path(sys.executable).with_name("jupyter")), "lab", "--no-browser",
               f"--port={port}", f"--IdentityProvider.token={token}", "--allow-root",
               f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
               f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
               f"--LabApp.user_settings_dir={tmp_path / 'settings'}"]
    log = (tmp_path / "lab.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}", token, root
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()


def _wait_until_serving(base: str, token: str, log: Path) -> None:
    deadline = time.monotonic() + HUNG_AFTER_S
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=10):
                return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not start: {log.read_text()[-2000:]}")
            time.sleep(0.3)


def test_a_runbook_error_is_one_line_in_jupyterlab_saved_and_live(lab_root, tmp_path: Path) -> None:
    base, token, root = lab_root
    bad = {"database_url": f"sqlite:///{tmp_path / 'x.db'}", "target": "nosuchrev"}
    # The failed headless run, while the server starts.
    failed = run_runbook("upgrade_downgrade", texts=bad, archive_dir=tmp_path / "archive",
                         cwd=REPO_ROOT)
    assert not failed.passed
    shutil.copy(failed.notebook, root / "failed.ipynb")
    live = nbformat.read(REPO_ROOT / "runbooks" / "upgrade_downgrade.ipynb", as_version=4)
    at = next(i for i, c in enumerate(live.cells) if "parameters" in c.metadata.get("tags", []))
    live.cells.insert(at + 1, nbformat.v4.new_code_cell(  # the person's edit of the parameters
        "\n".join(f"{name} = {value!r}" for name, value in bad.items())))
    nbformat.write(live, root / "live.ipynb")
    _wait_until_serving(base, token, tmp_path / "lab.log")

    browser = DevTools(f"{base}/lab/tree/failed.ipynb?token={token}", tmp_path / "profile",
                       size="1280,760")
    shots: dict[str, bytes] = {}

    async def look() -> dict[str, dict]:
        seen = {}
        await browser.wait_for(f"{_SHOWING.format('failed.ipynb')}"
                               f" && !!{_PANEL}.querySelector({_ERRORS})?.textContent",
                               "the saved notebook drawn with its error output", 90)
        seen["saved"] = await browser.evaluate(_seen(_PANEL))
        await browser.act(
            "jupyterapp.commands.execute('docmanager:open', {path: 'live.ipynb'})")
        await browser.wait_for(f"{_SHOWING.format('live.ipynb')} && {_PANEL}.textContent.includes('nosuchrev')"
                               f" && {_KERNEL_IDLE}",
                               "live.ipynb open, its kernel idle", 120)
        await browser.act("jupyterapp.commands.execute('notebook:run-all-cells')")
        await browser.wait_for(f"!!{_PANEL}.querySelector({_ERRORS})?.textContent && {_KERNEL_IDLE}",
                               "Run All stopped on the error", 120)
        seen["live"] = await browser.evaluate(_seen(_PANEL))
        seen["cells"] = await browser.evaluate(
            f"Array.from({_PANEL}.querySelectorAll('.jp-CodeCell')).map(c => [c.querySelector("
            f"'.jp-InputPrompt').textContent.trim(), !!c.querySelector({_ERRORS})])")
        await browser.act(
            f"{_PANEL}.querySelector({_ERRORS}).scrollIntoView({{block: 'center'}})")
        await asyncio.sleep(0.5)
        shots["live"] = base64.b64decode((await browser.call("Page.captureScreenshot",
                                                              format="png"))["data"])
        return seen

    seen = browser.drive(look)
    (tmp_path / "jupyterlab-runbook-error.png").write_bytes(shots["live"])

    for name in ("saved", "live"):
        assert seen[name]["errors"] == [ONE_LINE], name
        assert [t for t in TRACEBACK_TEXT if t in seen[name]["text"]] == [], name
    # Run All ran every cell down to the error (step 1, preflight) and none after it.
    failing = [number for number, (_, error) in enumerate(seen["cells"]) if error]
    assert len(failing) == 1, seen["cells"]
    prompts = [prompt for prompt, _ in seen["cells"]]
    assert all(p[1:-2].isdigit() for p in prompts[:failing[0] + 1]), prompts
    assert set(prompts[failing[0] + 1:]) == {"[ ]:"}, prompts
    assert shots["live"][:8] == b"\x89PNG\r\n\x1a\n"
