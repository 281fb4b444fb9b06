"""execute: a runbook is checked, run by papermill in the caller's directory, redacted, archived."""

from __future__ import annotations

import stat
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from softbee.runbook.archive.summary import read_summary
from softbee.runbook.errors import ParameterError
from softbee.runbook.run import catalog, execute, papermill_setup
from softbee.runbook.run.catalog import RUNBOOKS_DIR_ENV
from softbee.runbook.run.execute import ERROR_MARKER_TAG, describe_error, new_run_id, run_runbook
from tests.helpers import EXAMPLES

TOYS = EXAMPLES / "toy_runbooks"


@pytest.fixture(autouse=True)
def _toys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RUNBOOKS_DIR_ENV, str(TOYS))


@pytest.fixture
def scratch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The temp directory papermill's intermediate output goes to, watched by the test."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.mark.notebook
def test_a_passing_run_is_archived_with_the_facts_it_recorded(tmp_path, scratch, git_project):
    project, head = git_project
    archive_dir = tmp_path / "archive"

    run = run_runbook(
        "passing",
        texts={"message": "hello", "count": "5", "label": "None"},
        archive_dir=archive_dir,
        cwd=project,
    )

    record = run.record
    assert run.passed and record["status"] == "passed" and record["error"] is None
    assert record["parameters"] == {"message": "hello", "count": 5, "label": None}
    assert (record["revision_before"], record["revision_after"]) == ("aaa111", "bbb222")
    assert record["row_counts"] == [{"table": "users", "before": 5, "after": 7, "delta": 2}]
    assert record["database"] == {
        "dialect": "sqlite",
        "host": None,
        "port": None,
        "database": "toy.sqlite3",
    }
    assert record["git_commit"] == head
    assert record["project_dir"] == str(project)
    archived = nbformat.read(run.notebook, as_version=4)
    facts = read_summary(archived)
    assert facts["cwd"] == str(project)  # the kernel ran in the caller's directory
    assert (
        facts["outcome"]
        == record["outcome"]
        == "toy run said 'hello' (dry_run=False, ratio=0.5, label=None)"
    )
    assert archived.metadata.papermill.parameters == {"message": "hello", "count": 5, "label": None}
    assert run.notebook.is_relative_to(archive_dir) and run.html.is_file()
    assert list(scratch.iterdir()) == []  # papermill's own output file is gone


@pytest.mark.notebook
def test_a_run_failing_mid_notebook_is_archived_as_failed_with_its_error(tmp_path, scratch):
    run = run_runbook(
        "failing", texts={"target": "abc"}, archive_dir=tmp_path / "archive", cwd=tmp_path
    )

    record = run.record
    assert record["status"] == "failed" and not run.passed
    error = record["error"]
    assert (error["type"], error["message"]) == (
        "RuntimeError",
        "toy migration to abc failed half way",
    )
    assert error["step"] == "Step 2: migrate to the target"
    archived = nbformat.read(run.notebook, as_version=4)
    assert ERROR_MARKER_TAG in archived.cells[0].metadata.tags  # papermill's banner kept on top
    assert archived.cells[error["cell"]].outputs[-1].ename == "RuntimeError"
    assert record["revision_before"] == "aaa111"  # recorded at preflight, before the failure
    assert record["revision_after"] is None
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize(
    "texts",
    [{"message": "hi", "nope": "1"}, {"count": "1"}, {"message": "hi", "count": "five"}],
    ids=["unknown", "missing-required", "wrong-type"],
)
def test_invalid_parameters_stop_the_run_before_anything_executes_or_is_archived(
    tmp_path, scratch, texts
):
    with pytest.raises(ParameterError):
        run_runbook("passing", texts=texts, archive_dir=tmp_path / "archive", cwd=tmp_path)

    assert not (tmp_path / "archive").exists()
    assert list(scratch.iterdir()) == []


def test_describe_error_points_at_the_failing_cell_and_its_step():
    banner = new_markdown_cell("An Exception was encountered")
    banner.metadata["tags"] = [ERROR_MARKER_TAG]
    nb = new_notebook(
        cells=[
            banner,
            new_markdown_cell("## Step 1: preflight"),
            new_code_cell("ok()", outputs=[]),
            new_markdown_cell("## Step 2: migrate\n\nWhy it matters."),
            new_code_cell(
                "boom()", outputs=[new_output("error", ename="E", evalue="x", traceback=[])]
            ),
        ]
    )

    # Never cut: the advice (a complete command to run) comes at the end of the message.
    message = "x" * 600 + "; Finish with recover_stamp: `` softbee-runbook run recover_stamp ... ``"
    assert describe_error(nb, "E", message, 7) == {
        "type": "E",
        "message": message,
        "cell": 4,
        "execution_count": 7,
        "step": "Step 2: migrate",
    }


@pytest.mark.parametrize("outcome", ["passes", "fails", "interrupted"])
def test_papermills_unredacted_copy_lives_only_in_a_private_directory_removed_after_the_run(
    monkeypatch, tmp_path, scratch, outcome
):
    """The working copy is written under a 0700 directory in the temp dir, gone afterwards."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    seen = []

    def fake_execute_notebook(source, target, **_kwargs):
        assert target.startswith(papermill_setup.REDACTED_SCHEME)  # every save goes through the redactor
        output = target.removeprefix(papermill_setup.REDACTED_SCHEME)
        folder = Path(output).parent
        seen.append((folder, stat.S_IMODE(folder.stat().st_mode)))
        nb = new_notebook(
            cells=[
                new_markdown_cell("## Step 1: work"),
                new_code_cell(
                    "boom()", outputs=[new_output("error", ename="E", evalue="x", traceback=[])]
                ),
            ]
        )
        nbformat.write(nb, output)
        if outcome == "fails":
            raise PapermillExecutionError(1, 1, "boom()", "E", "x", [])
        if outcome == "interrupted":
            raise KeyboardInterrupt("stopped by signal SIGTERM")
        return nb

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute_notebook)

    result = execute.execute(TOYS / "passing.ipynb", {}, cwd=tmp_path)

    [(folder, mode)] = seen
    assert folder.parent == scratch and mode == 0o700  # private to the user running the job
    assert list(scratch.iterdir()) == []  # removed, whatever the outcome
    assert (result.error is None) == (outcome == "passes")


def test_the_failing_step_and_the_runbook_purpose_are_read_by_one_function():
    assert execute.first_line is catalog.first_line


def test_run_ids_are_short_and_distinct():
    ids = {new_run_id() for _ in range(100)}

    assert len(ids) == 100 and all(len(i) == 12 for i in ids)


def test_a_run_waits_for_the_warming_of_its_page_templates_only_so_long(monkeypatch, tmp_path):
    """render.warm_beside's thread is joined before the render, within render.WARM_WAIT_S."""
    import threading
    import time

    import papermill

    from softbee.runbook.archive import render

    release = threading.Event()

    class Kernel:  # stands in for the run's kernel
        manager = None
        environ: dict[str, str] = {}

        def request_shutdown(self):
            pass

        def shutdown(self):
            pass

    def stuck_warm():
        release.wait(30)  # a warm-up that would hold the run for 30 s

    def fake_execute_notebook(source, target, **_kwargs):
        nb = new_notebook(cells=[new_code_cell("pass")])
        papermill_setup._HANDLER.write(nbformat.writes(nb), target)
        return nb

    monkeypatch.setattr(render, "warm", stuck_warm)
    monkeypatch.setattr(render, "WARM_WAIT_S", 0.2)
    monkeypatch.setattr(papermill, "execute_notebook", fake_execute_notebook)
    prepared = execute.prepare_run("passing", texts={"message": "hi"}, archive_dir=tmp_path / "archive",
                                   cwd=tmp_path)
    began = time.monotonic()
    try:
        run = execute.run_prepared(prepared, Kernel())  # type: ignore[arg-type]
    finally:
        release.set()

    assert run.passed and run.html.is_file()
    assert time.monotonic() - began < 10  # 0.2 s of waiting, then the page rendered anyway


def test_the_page_templates_warm_once_per_process_and_beside_the_caller(monkeypatch):
    from softbee.runbook.archive import render

    render.warm()
    calls = []
    monkeypatch.setattr(render, "exporter", lambda: calls.append("made") or None)

    render.warm()  # done: nothing rendered again (a fleet worker calls it per target)
    thread = render.warm_beside()
    thread.join(10)

    assert calls == [] and thread.daemon and not thread.is_alive()
