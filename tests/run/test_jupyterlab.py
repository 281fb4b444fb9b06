"""The runbooks run clean in a plain ``jupyter lab`` started in the project root.

JupyterLab starts a notebook's kernel in the notebook's folder (``runbooks/``), not in the
folder the server was started from. The test starts a real server the way a user would
(``jupyter lab`` from the project root; only headless options added), opens two runbooks
through its REST API and runs every code cell through the kernel's websocket, as the
"Run All" button does, checking that no cell errs.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from tornado.websocket import websocket_connect

from tests.helpers import HEAD, HUNG_AFTER_S, REPO_ROOT, revision_of

pytestmark = pytest.mark.notebook



def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Lab:
    """A running JupyterLab server: its base URL and token."""

    def __init__(self, port: int, token: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.token = token

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the REST API and return the decoded JSON answer."""
        request = urllib.request.Request(
            f"{self.base}{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            text = answer.read().decode()
        return json.loads(text) if text else None


@pytest.fixture
def lab(tmp_path: Path, sqlite_url: str) -> Iterator[Lab]:
    """``jupyter lab`` started in the project root, with DATABASE_URL pointing at a fresh SQLite file."""
    port, token = _free_port(), uuid.uuid4().hex
    env = {**os.environ, "DATABASE_URL": sqlite_url, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    env.pop("SOFTBEE_PROJECT_ROOT", None)  # what `make lab` sets: a plain `jupyter lab` does not
    command = [str(Path(sys.executable).with_name("jupyter")), "lab", "--no-browser",
               f"--port={port}", f"--IdentityProvider.token={token}", "--allow-root"]
    log = (tmp_path / "lab.log").open("w")
    server = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    running = Lab(port, token)
    try:
        deadline = time.monotonic() + HUNG_AFTER_S
        while True:
            try:
                running.api("GET", "/api/status")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not start: {(tmp_path / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield running
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()


async def _run_cells(lab: Lab, kernel_id: str, sources: list[str]) -> list[list[dict[str, Any]]]:
    """Execute ``sources`` one by one on the kernel; return each cell's iopub messages."""
    url = f"ws://127.0.0.1:{lab.base.rsplit(':', 1)[1]}/api/kernels/{kernel_id}/channels?token={lab.token}"
    socket_ = await websocket_connect(url)
    session = uuid.uuid4().hex
    results = []
    try:
        for source in sources:
            msg_id = uuid.uuid4().hex
            socket_.write_message(json.dumps({
                "header": {"msg_id": msg_id, "username": "test", "session": session,
                           "msg_type": "execute_request", "version": "5.3"},
                "parent_header": {}, "metadata": {}, "channel": "shell",
                "content": {"code": source, "silent": False, "store_history": True,
                            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
            }))
            messages: list[dict[str, Any]] = []
            while True:
                raw = await asyncio.wait_for(socket_.read_message(), HUNG_AFTER_S)
                assert raw is not None, "the kernel's websocket closed"
                message = json.loads(raw)
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                if message["channel"] == "iopub":
                    messages.append(message)
                    if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
                        break
            results.append(messages)
    finally:
        socket_.close()
    return results


def run_all(lab: Lab, runbook: str) -> list[list[dict[str, Any]]]:
    """Open ``runbooks/<runbook>.ipynb`` as JupyterLab does and run every code cell in order."""
    session = lab.api("POST", "/api/sessions", {
        "path": f"runbooks/{runbook}.ipynb", "name": f"{runbook}.ipynb", "type": "notebook",
        "kernel": {"name": "python3"},
    })
    notebook = nbformat.read(REPO_ROOT / "runbooks" / f"{runbook}.ipynb", as_version=4)
    sources = ["import os; print(os.getcwd())"]
    sources += [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    try:
        return asyncio.run(_run_cells(lab, session["kernel"]["id"], sources))
    finally:
        lab.api("DELETE", f"/api/sessions/{session['id']}")


def errors_in(cells: list[list[dict[str, Any]]]) -> list[str]:
    """Every error a cell raised or wrote to stderr as a traceback."""
    found = []
    for number, messages in enumerate(cells):
        for message in messages:
            content = message["content"]
            if message["msg_type"] == "error":
                found.append(f"cell {number}: {content['ename']}: {content['evalue']}")
            elif message["msg_type"] == "stream" and "Traceback" in content.get("text", ""):
                found.append(f"cell {number}: {content['text'][-500:]}")
    return found


def test_runbooks_run_clean_in_plain_jupyter_lab_started_at_the_project_root(
    lab: Lab, sqlite_url: str
) -> None:
    """inspect_diff then upgrade_downgrade, every cell, from a kernel whose cwd is runbooks/."""
    inspected = run_all(lab, "inspect_diff")
    cwd = "".join(m["content"].get("text", "") for m in inspected[0] if m["msg_type"] == "stream")
    assert cwd.strip() == str(REPO_ROOT / "runbooks")  # the situation this test is about
    assert errors_in(inspected) == []
    assert revision_of(sqlite_url) is None  # inspect_diff changes nothing

    upgraded = run_all(lab, "upgrade_downgrade")
    assert errors_in(upgraded) == []
    assert revision_of(sqlite_url) == HEAD
