"""Drift in the runbooks: check_drift (exit 1, archived), upgrade_downgrade's gate, inspect_diff."""

from __future__ import annotations

from pathlib import Path

import pytest

from softbee.runbook.archive.chain import read_index
from softbee.runbook.archive.summary import read_summary
from tests.helpers import HEAD, VARROA, project_at, revision_of, run_cli
from tests.notebooks import run_failing_runbook, run_runbook, step_outputs
from tests.review.test_drift import THREE_CHANGES, change_by_hand

pytestmark = pytest.mark.notebook


def test_check_drift_exits_1_naming_exactly_the_three_changes_and_0_when_clean(
    any_database_url: str, tmp_path: Path
) -> None:
    project_at(any_database_url, HEAD).engine.dispose()
    archive = tmp_path / "archive"
    clean = run_cli("check_drift", env={"DATABASE_URL": any_database_url}, archive=archive)
    assert clean.returncode == 0, clean.stdout + clean.stderr

    change_by_hand(any_database_url)
    drifted = run_cli("check_drift", env={"DATABASE_URL": any_database_url}, archive=archive)

    assert drifted.returncode == 1, drifted.stdout + drifted.stderr
    assert "Traceback" not in drifted.stderr
    assert "drift from revision" in drifted.stderr
    first, second = [r for r in read_index(archive) if r["runbook"] == "check_drift"]
    assert (first["status"], second["status"]) == ("passed", "failed")
    assert first["extra_facts"]["drift"]["lines"] == []
    assert sorted(second["extra_facts"]["drift"]["lines"]) == THREE_CHANGES
    assert second["error"]["type"] == "DriftError"


def test_upgrade_downgrade_refuses_a_drifted_database_unless_allow_drift(
    any_database_url: str, tmp_path: Path
) -> None:
    project_at(any_database_url, VARROA).engine.dispose()
    change_by_hand(any_database_url)

    error, nb = run_failing_runbook("upgrade_downgrade", tmp_path, database_url=any_database_url)

    assert error.ename == "DriftError"
    assert "allow_drift=True" in error.evalue
    assert revision_of(any_database_url) == VARROA  # nothing ran
    assert sorted(read_summary(nb)["drift"]["lines"]) == THREE_CHANGES

    allowed = run_runbook("upgrade_downgrade", tmp_path, database_url=any_database_url,
                          allow_drift=True)

    assert revision_of(any_database_url) == HEAD
    facts = read_summary(allowed)
    assert facts["allow_drift"] is True
    assert sorted(facts["drift"]["lines"]) == THREE_CHANGES


def test_inspect_diff_shows_drift_apart_from_the_model_diff(sqlite_url: str, tmp_path: Path) -> None:
    project_at(sqlite_url, HEAD).engine.dispose()
    change_by_hand(sqlite_url)

    nb = run_runbook("inspect_diff", tmp_path, database_url=sqlite_url)

    assert sorted(read_summary(nb)["drift"]["lines"]) == THREE_CHANGES
    shown = "".join(str(o.get("data", {}).get("text/markdown", ""))
                    for o in step_outputs(nb, "## 1. Current revision, and what is wrong with it"))
    assert "**Drift:** drift from revision" in shown
