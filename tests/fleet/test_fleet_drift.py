"""fleet drift: ``fleet status --drift`` per target, and ``fleet run``'s pre-apply gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from softbee.runbook import cli
from softbee.runbook.fleet.drift import SKIPPED_DRIFT, target_drift
from softbee.runbook.fleet.fleet_run import PASSED, run_fleet
from softbee.runbook.fleet.status import fleet_status
from softbee.runbook.fleet.targets import load_targets
from softbee.runbook.review.drift import Drift
from softbee.runbook.review.drift_many import FleetDrift
from tests.conftest import fresh_database
from tests.fleet.test_fleet import targets_file
from tests.helpers import EXAMPLES, HEAD, MIGRATIONS, REPO_ROOT, project_at
from tests.review.test_drift import THREE_CHANGES, change_by_hand


def second_database(url: str, tmp_path: Path) -> tuple[str, Path]:
    """The kind of ``url`` (for ``fresh_database``) and a folder for a second one of that kind."""
    second = tmp_path / "second"
    second.mkdir()
    return url.split(":", 1)[0].split("+")[0], second


def test_fleet_status_drift_names_the_drifted_target_and_fails(
    any_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    kind, second = second_database(any_database_url, tmp_path)
    with fresh_database(kind, second) as other:
        for url in (any_database_url, other):
            project_at(url, HEAD).engine.dispose()
        change_by_hand(other)
        path = targets_file(tmp_path, monkeypatch, {"clean": any_database_url, "hand": other})
        capsys.readouterr()  # the migrations' progress

        status = fleet_status(load_targets(path), MIGRATIONS, drift=FleetDrift(
            "softbee:create_app", str(MIGRATIONS)))
        assert capsys.readouterr().out == ""  # the scratch build's progress is not the report
        code = cli.main(["fleet", "status", str(path), "--migrations-dir", str(MIGRATIONS),
                         "--drift", "--json"])

    by_name = {t.name: t for t in status.targets}
    assert by_name["clean"].drifted is False
    assert by_name["hand"].drifted is True
    for line in THREE_CHANGES:
        assert line in by_name["hand"].drift
    assert "1 drifted" in status.summary()
    assert code == 1
    shown = json.loads(capsys.readouterr().out)
    assert [t["drifted"] for t in shown["targets"]] == [False, True]


def test_a_drift_check_that_raises_is_said_per_target() -> None:
    def broken(_url: str) -> Drift:
        raise RuntimeError("app would not load")

    found = target_drift(broken, "sqlite:///x")

    assert found.drifted is None
    assert found.message == "drift could not be checked: app would not load"


@pytest.mark.notebook
def test_fleet_run_skips_drifted_targets_unless_allow_drift(
    any_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOFTBEE_RUNBOOKS_DIR", str(EXAMPLES / "fleet_runbooks"))
    kind, second = second_database(any_database_url, tmp_path)
    with fresh_database(kind, second) as other:
        for url in (any_database_url, other):
            project_at(url, HEAD).engine.dispose()
        change_by_hand(other)
        fleet = load_targets(targets_file(tmp_path, monkeypatch,
                                          {"clean": any_database_url, "hand": other}))
        check = FleetDrift("softbee:create_app", str(MIGRATIONS))

        gated = run_fleet("toy_gated", fleet, archive_dir=tmp_path / "archive", cwd=REPO_ROOT,
                          drift=check)
        allowed = run_fleet("toy_gated", fleet, archive_dir=tmp_path / "archive", cwd=REPO_ROOT,
                            drift=check, allow_drift=True)

    assert [(t.name, t.status) for t in gated.targets] == [("clean", PASSED),
                                                            ("hand", SKIPPED_DRIFT)]
    assert "column users.nickname not in any revision" in gated.targets[1].error
    assert gated.record["counts"][SKIPPED_DRIFT] == 1
    assert [(t.name, t.status) for t in allowed.targets] == [("clean", PASSED), ("hand", PASSED)]
    assert allowed.record["allow_drift"] is True
