"""What a runbook's cells show a person: one line for an expected error, no facts, no NaN."""

from __future__ import annotations

import html
import math
import re

import nbformat
import pytest

from softbee.runbook.run.cells import NONE, plain_cell
from softbee.runbook.run.execute import run_runbook
from tests.helpers import EXAMPLES, REPO_ROOT


def visible_text(page: bytes) -> str:
    """What a reader sees of an archived page: no scripts, styles or tags."""
    body = page.decode("utf-8")
    body = body[body.index("<body"):]
    body = re.sub(r"<(script|style)[^>]*>.*?</\1>", "", body, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", body))


@pytest.mark.notebook
def test_an_expected_error_is_one_line_in_the_archived_page_and_still_fails_the_run(tmp_path):
    run = run_runbook("upgrade_downgrade",
                      texts={"database_url": f"sqlite:///{tmp_path / 'x.db'}",
                             "target": "nosuchrev"},
                      archive_dir=tmp_path / "archive", cwd=REPO_ROOT)

    assert not run.passed and "RevisionError" in str(run.record["error"])
    text = visible_text(run.html.read_bytes())
    assert "RevisionError: revision 'nosuchrev': Can't locate revision" in text
    for traceback_text in ("Traceback", "-->", "softbee/runbook/", "raise RevisionError"):
        assert traceback_text not in text
    assert "An Exception was encountered" not in text  # papermill's banner: one box, not two
    assert "encountered an exception here" not in text
    first = text[:text.index("Upgrade or downgrade the database")]  # above the notebook
    assert ("failed at step '1. Preflight': RevisionError: revision 'nosuchrev': "
            "Can't locate revision") in first
    outputs = [o for cell in nbformat.read(run.notebook, as_version=4).cells
               for o in cell.get("outputs", []) if o.output_type == "error"]
    assert [len(o.traceback) for o in outputs] == [1]


@pytest.mark.notebook
def test_an_unexpected_error_keeps_its_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTBEE_RUNBOOKS_DIR", str(EXAMPLES / "toy_runbooks"))

    run = run_runbook("failing", archive_dir=tmp_path / "archive", cwd=tmp_path)

    assert not run.passed
    errors = [o for cell in nbformat.read(run.notebook, as_version=4).cells
              for o in cell.get("outputs", []) if o.output_type == "error"]
    assert errors and len(errors[0].traceback) > 1
    assert "An Exception was encountered" in visible_text(run.html.read_bytes())


@pytest.mark.notebook
def test_a_passed_run_shows_no_facts_line_and_no_nan(tmp_path):
    run = run_runbook("upgrade_downgrade", texts={"database_url": f"sqlite:///{tmp_path / 'x.db'}"},
                      archive_dir=tmp_path / "archive", cwd=REPO_ROOT)

    assert run.passed, run.record["error"]
    assert run.record["revision_after"]  # the facts are still recorded for the archive
    page = run.html.read_bytes()
    assert "runbook facts" not in visible_text(page)
    first = visible_text(page)[:visible_text(page).index("Upgrade or downgrade the database")]
    head = run.record["revision_after"]
    assert f"passed: upgrade base -> {head}" in first and f"revision: base -> {head}" in first
    cells = [html.unescape(c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", page.decode())]
    assert cells, "no table in the page"
    assert {"NaN", "None", "True", "False", "nan"} & set(cells) == set()


@pytest.mark.parametrize(("value", "shown"), [
    (None, NONE), (math.nan, NONE), (True, "yes"), (False, "no"), (0, 0), ("", ""), (1.5, 1.5),
])
def test_a_table_cell_reads_as_words(value, shown):
    assert plain_cell(value) == shown
