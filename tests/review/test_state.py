"""Revisions: current, heads, targets and the paths between them."""

from __future__ import annotations

from pathlib import Path

import pytest

from softbee.runbook.errors import RevisionError
from softbee.runbook.review.state import (
    get_state,
    history_frame,
    path_between,
    resolve_target,
    single_head,
)
from tests.helpers import (
    FULL_NAME,
    HEAD,
    HIVE_HEALTH,
    INSPECTIONS,
    VARROA,
    migrations_with_extra_revision,
    project_at,
)


def test_fresh_database_is_at_base_and_behind_head(sqlite_url: str) -> None:
    state = get_state(project_at(sqlite_url))
    assert state.current == () and state.label == "base"
    assert state.heads == (HEAD,) and not state.at_head


def test_history_lists_every_revision_oldest_first(sqlite_url: str) -> None:
    frame = history_frame(project_at(sqlite_url))
    assert frame["revision"].iloc[-1] == HEAD
    assert frame["down_revision"].iloc[0] == "base"
    assert len(frame) >= 7


def test_relative_targets_walk_the_history(sqlite_url: str) -> None:
    project = project_at(sqlite_url, FULL_NAME)
    assert resolve_target(project, "-1", (FULL_NAME,)) == HIVE_HEALTH
    assert resolve_target(project, "+2", (FULL_NAME,)) == HEAD
    assert resolve_target(project, "base", (FULL_NAME,)) is None
    assert resolve_target(project, FULL_NAME[:6], (FULL_NAME,)) == FULL_NAME


def test_downgrade_below_base_is_refused_with_the_distance(sqlite_url: str) -> None:
    project = project_at(sqlite_url, "2b1d6f8c3e02")
    with pytest.raises(RevisionError, match="only 2 revision"):
        resolve_target(project, "-3", ("2b1d6f8c3e02",))


def test_unknown_revision_is_refused(sqlite_url: str) -> None:
    with pytest.raises(RevisionError, match="nope"):
        resolve_target(project_at(sqlite_url), "nope", ())


def test_ambiguous_prefix_is_refused(sqlite_url: str, tmp_path: Path) -> None:
    migrations = migrations_with_extra_revision(tmp_path, HEAD[:4] + "ffff0009", HEAD)
    project = project_at(sqlite_url, migrations_dir=migrations)
    with pytest.raises(RevisionError, match="ambiguous"):
        resolve_target(project, HEAD[:4], ())


def test_several_heads_are_refused_with_the_merge_command(sqlite_url: str, tmp_path: Path) -> None:
    migrations = migrations_with_extra_revision(tmp_path, "feedface0001", VARROA)
    project = project_at(sqlite_url, migrations_dir=migrations)
    with pytest.raises(RevisionError, match="flask db merge") as caught:
        single_head(project)
    assert "2 heads" in str(caught.value)


def test_path_between_is_oldest_first_and_excludes_the_start(sqlite_url: str) -> None:
    project = project_at(sqlite_url)
    path = [s.revision for s in path_between(project, INSPECTIONS, HEAD)]
    assert path == [HIVE_HEALTH, FULL_NAME, VARROA, HEAD]
