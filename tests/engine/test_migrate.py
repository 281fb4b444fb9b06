"""run_migration's entry point: its keyword arguments and its one options object."""

from __future__ import annotations

import pytest

from softbee.runbook.engine.migrate import run_migration
from softbee.runbook.errors import ParameterError
from softbee.runbook.util.options import RunOptions
from tests.helpers import HEAD, VARROA, dump, project_at, revision_of


def test_a_run_given_options_runs_as_the_same_keywords_would(sqlite_url: str) -> None:
    """options=RunOptions(rehearse=True) rehearses: everything rolled back, as rehearse=True does."""
    project = project_at(sqlite_url, VARROA, rows=3)
    before = dump(sqlite_url)
    result = run_migration(project, "upgrade", "head", options=RunOptions(rehearse=True))
    assert result.rehearsal and not result.committed and [s.revision for s in result.steps] == [HEAD]
    assert dump(sqlite_url) == before and revision_of(sqlite_url) == VARROA


def test_options_beside_a_keyword_that_contradicts_them_is_refused_before_anything_runs(
    sqlite_url: str,
) -> None:
    project = project_at(sqlite_url, VARROA)
    with pytest.raises(ParameterError, match="pass either options= or rehearse"):
        run_migration(project, "upgrade", "head", rehearse=True, options=RunOptions())
    assert revision_of(sqlite_url) == VARROA
