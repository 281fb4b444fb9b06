"""secrets: a secret parameter reaches the kernel through its environment, never the notebook."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output
from sqlalchemy.engine import make_url

from softbee.runbook.run import execute, papermill_setup
from softbee.runbook.util.redact import Redactor
from softbee.runbook.util.secrets import SECRETS_ENV, hide, masked, reveal
from tests.conftest import create_pg_database, drop_pg_database
from tests.helpers import EXAMPLES, HUNG_AFTER_S, REPO_ROOT

PASSWORD = "Kq7vNw2ZpX9s"  # letters and digits only: no quoted or encoded form can hide it


def test_a_url_password_and_a_secret_named_value_are_masked_and_moved_to_the_environment():
    hidden = hide(
        {
            "database_url": "postgresql://app:pw0rd99@db.internal/softbee",
            "api_token": "abc123tok",
            "target": "head",
            "lock_timeout_ms": 5000,
            "confirm": None,
        }
    )

    assert hidden.parameters == {
        "database_url": "postgresql://app:***@db.internal/softbee",
        "api_token": "***",
        "target": "head",
        "lock_timeout_ms": 5000,
        "confirm": None,
    }
    assert json.loads(hidden.environ[SECRETS_ENV]) == {
        "database_url": "postgresql://app:pw0rd99@db.internal/softbee",
        "api_token": "abc123tok",
    }


def test_parameters_without_secrets_leave_the_environment_alone():
    hidden = hide({"database_url": "sqlite:///instance/dev.sqlite3", "target": "head"})

    assert hidden.parameters == {"database_url": "sqlite:///instance/dev.sqlite3", "target": "head"}
    assert hidden.environ == {}


def test_reveal_gives_back_the_real_value_only_for_its_masked_form():
    environ = hide({"database_url": "postgresql://u:pw0rd99@h/db", "api_token": "abc123tok",
                    "other_key": "zzz999"}).environ

    assert reveal("postgresql://u:***@h/db", environ=environ) == "postgresql://u:pw0rd99@h/db"
    assert reveal("***", "api_token", environ=environ) == "abc123tok"
    assert reveal("***", environ=environ) == "***"  # two secrets mask to ***: the name decides
    assert reveal("postgresql://u:***@other/db", environ=environ) == "postgresql://u:***@other/db"
    assert reveal("typed by hand", environ={}) == "typed by hand"  # JupyterLab: no environment
    assert reveal(None, environ=environ) is None


def test_a_masked_value_holds_no_part_of_the_secret():
    assert masked("db_password", "hunter22") == "***"
    assert masked("fix_sql", "SELECT dblink_connect('postgresql://u:pw0rd99@h/db')") == (
        "SELECT dblink_connect('postgresql://u:***@h/db')"
    )
    assert masked("fix_sql", "ALTER ROLE app PASSWORD 'x'") == "ALTER ROLE app PASSWORD 'x'"  # run as given


def test_load_project_uses_the_real_url_behind_the_masked_one(monkeypatch):
    from softbee.runbook.project import load_project
    from tests.helpers import MIGRATIONS

    hidden = hide({"database_url": f"postgresql://u:{PASSWORD}@db.internal/softbee"})
    monkeypatch.setenv(SECRETS_ENV, hidden.environ[SECRETS_ENV])

    project = load_project(database_url=hidden.parameters["database_url"],
                           migrations_dir=str(MIGRATIONS))

    assert project.url.password == PASSWORD and project.url.host == "db.internal"
    assert PASSWORD not in project.safe_url


def test_papermill_gets_masked_parameters_and_the_kernel_the_real_ones(monkeypatch, tmp_path):
    import papermill

    seen = {}

    class Kernel:  # stands in for the run's kernel: what it was started with is the point
        manager = None

        def __init__(self, environ):
            self.environ = dict(environ)

        def request_shutdown(self):
            pass

        def shutdown(self):
            pass

    def fake_start(*, cwd, environ, preload=(), extra_environ=None):
        seen["kernel"] = dict(extra_environ or {})
        return Kernel(environ)

    def fake_execute_notebook(source, target, parameters, **_kwargs):
        seen["parameters"] = parameters
        seen["environ"] = os.environ.get(SECRETS_ENV)  # this process's: never the secrets
        nb = new_notebook(cells=[new_code_cell("pass")])
        papermill_setup._HANDLER.write(nbformat.writes(nb), target)
        return nb

    monkeypatch.setattr(execute.RunKernel, "start", staticmethod(fake_start))
    monkeypatch.setattr(papermill, "execute_notebook", fake_execute_notebook)
    monkeypatch.setenv("SOFTBEE_RUNBOOKS_DIR", str(EXAMPLES / "toy_runbooks"))

    execute.run_runbook(
        "leaky",
        texts={"database_url": f"postgresql://u:{PASSWORD}@h/db", "api_token": "abc123tok"},
        archive_dir=tmp_path / "archive",
        cwd=tmp_path,
    )

    assert seen["parameters"] == {"database_url": "postgresql://u:***@h/db", "api_token": "***"}
    assert json.loads(seen["kernel"][SECRETS_ENV]) == {
        "database_url": f"postgresql://u:{PASSWORD}@h/db",
        "api_token": "abc123tok",
    }
    assert seen["environ"] is None and SECRETS_ENV not in os.environ  # only the kernel's


def test_every_save_of_papermills_working_copy_is_redacted_before_it_reaches_the_disk(tmp_path):
    output = tmp_path / "working.ipynb"
    nb = new_notebook(
        cells=[
            new_code_cell(
                "print(url)",
                outputs=[new_output("stream", name="stdout", text=f"postgresql://u:{PASSWORD}@h/db\n")],
            )
        ]
    )
    redactor = Redactor.for_run({"database_url": f"postgresql://u:{PASSWORD}@h/db"}, environ={})

    with papermill_setup._redacted_saves(output, redactor) as target:
        papermill_setup._HANDLER.write(nbformat.writes(nb), target)

    written = output.read_text(encoding="utf-8")
    assert PASSWORD not in written
    assert nbformat.reads(written, as_version=4).cells[0].outputs[0].text == "postgresql://u:***@h/db\n"


def test_the_engines_saves_write_what_papermills_write_wrote_without_serialising_twice(tmp_path):
    nb = new_notebook(
        cells=[
            new_code_cell(
                "print(url)\nprint('two lines')",
                outputs=[new_output("stream", name="stdout", text=f"postgresql://u:{PASSWORD}@h/db\n"),
                         new_output("display_data", data={"text/plain": "a\nb", "text/html": "<b>é</b>"})],
            )
        ]
    )
    nb.cells[0].metadata["trusted"] = True  # transient: never written
    redactor = Redactor.for_run({"database_url": f"postgresql://u:{PASSWORD}@h/db"}, environ={})
    written = {}
    for way in ("write", "save"):
        output = tmp_path / f"{way}.ipynb"
        with papermill_setup._redacted_saves(output, redactor) as target:
            if way == "write":
                papermill_setup._HANDLER.write(nbformat.writes(nb), target)
            else:
                assert papermill_setup._HANDLER.save(nb, target)
        written[way] = output.read_bytes()

    assert written["save"] == written["write"] and PASSWORD.encode() not in written["save"]
    assert nb.cells[0].outputs[0].text.startswith(f"postgresql://u:{PASSWORD}")  # not masked in place
    assert nb.cells[0].metadata["trusted"] and isinstance(nb.cells[0].source, str)
    assert not papermill_setup._HANDLER.save(nb, str(tmp_path / "plain.ipynb"))  # not ours: papermill's


@pytest.mark.notebook
def test_a_secret_a_cell_prints_is_masked_in_every_save_of_a_real_run(tmp_path, monkeypatch):
    """The run itself must hand papermill the redacting path: its working copy is checked."""
    kept: list[Path] = []

    class KeptDirectory:  # execute's private temp dir, left in place to be searched
        def __init__(self, prefix: str = "") -> None:
            kept.append(tmp_path / f"{prefix}kept")
            kept[-1].mkdir()

        def __enter__(self) -> str:
            return str(kept[-1])

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(execute, "tempfile", types.SimpleNamespace(TemporaryDirectory=KeptDirectory))
    monkeypatch.setenv("SOFTBEE_RUNBOOKS_DIR", str(EXAMPLES / "toy_runbooks"))
    monkeypatch.setenv("DATABASE_URL", f"postgresql://app:{PASSWORD}@db.internal/softbee")

    run = execute.run_runbook("leaky", texts={"api_token": "abc123tok"},
                              archive_dir=tmp_path / "archive", cwd=tmp_path)

    assert not run.passed  # leaky prints what it was given, then raises with it
    working = kept[0] / "leaky.ipynb"
    text = working.read_text(encoding="utf-8")
    assert "env: postgresql://app:***@db.internal/softbee" in text  # the cell's output was saved
    assert PASSWORD not in text and "abc123tok" not in text


# -- kill -9 ------------------------------------------------------------------------------------


def _working_copy(tmp: Path) -> str:
    """The text of papermill's working copy in the run's private temp dir ('' until it exists)."""
    for path in tmp.glob("softbee-runbook-*/*.ipynb"):
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
    return ""


#: When to kill the run, as a condition on what it has written so far.
KILL_MOMENTS: dict[str, Callable[[Path], bool]] = {
    # papermill wrote the parameterized notebook: before the fix, the URL was in it
    "working copy written": lambda root: bool(_working_copy(root / "tmp")),
    # the set-up cell ran: the kernel has loaded the project with the real URL
    "project loaded": lambda root: "application/vnd.softbee.runbook+json" in _working_copy(
        root / "tmp"
    ),
    # the migration ran (its progress lines are saved): the last steps and archiving are next.
    # (The final save, with the outcome, now lives a few milliseconds: the kernel is no longer
    # waited for before the working copy is removed.)
    "migration done": lambda root: "done in " in _working_copy(root / "tmp"),
}


@pytest.fixture
def password_url() -> Iterator[str]:
    """A fresh PostgreSQL database, its URL carrying a password (trust auth accepts any)."""
    url = create_pg_database()
    try:
        yield make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)
    finally:
        drop_pg_database(url)


def _files_holding(root: Path, needle: bytes) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and needle in path.read_bytes():
            found.append(str(path.relative_to(root)))
    return found


def _wait_until_gone(pgid: int, timeout_s: float) -> None:
    """Let the orphaned kernel notice its parent died and exit; then kill what is left."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.notebook
@pytest.mark.postgres
@pytest.mark.parametrize("moment", list(KILL_MOMENTS))
def test_a_run_killed_with_sigkill_leaves_no_byte_of_the_password_on_disk(
    tmp_path, password_url, moment
):
    """kill -9 of a real run: search its temp dir, the kernel's files and the archive."""
    root = tmp_path / "run"
    for folder in ("tmp", "archive", "ipython", "jupyter-runtime"):
        (root / folder).mkdir(parents=True)
    env = {
        **os.environ,
        "TMPDIR": str(root / "tmp"),
        "IPYTHONDIR": str(root / "ipython"),  # the kernel's history database
        "JUPYTER_RUNTIME_DIR": str(root / "jupyter-runtime"),  # its connection file
    }
    env.pop("DATABASE_URL", None)
    runner = subprocess.Popen(
        [sys.executable, "-m", "softbee.runbook", "run", "upgrade_downgrade",
         "-p", "database_url", password_url, "--archive-dir", str(root / "archive")],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the kernel can be cleaned up after
    )
    reached = KILL_MOMENTS[moment]
    try:
        deadline = time.monotonic() + HUNG_AFTER_S
        # Remember the answer: papermill rewrites the working copy after every cell, so a second
        # look can catch it half-written and see nothing.
        while not (hit := reached(root)) and runner.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert hit, (f"{moment!r} not reached" if runner.poll() is None else
                     f"the run ended before {moment!r}: {runner.stdout.read()!r}")
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=30)
    finally:
        _wait_until_gone(runner.pid, timeout_s=20)
        runner.stdout.close()

    assert runner.returncode == -signal.SIGKILL
    assert list((root / "tmp").glob("softbee-runbook-*/*.ipynb")), "no working copy to search"
    assert _files_holding(root, PASSWORD.encode()) == []
