"""A history with the quirks real projects carry (tests/examples/history_quirks), reported truly.

On PostgreSQL: a revision whose downgrade leaves its enum type behind makes a round trip fail
in the re-upgrade, and the failure says so; a downgrade that cannot run (an unnamed foreign
key) stops the run naming that revision, everything rolled back.
"""

from __future__ import annotations

import pytest

from softbee.runbook.engine.migrate import run_migration
from softbee.runbook.errors import MigrationFailed, RunbookError
from tests.helpers import load_example, revision_of

APP_ENUM, HEAD = "b8000000003c", "b8000000004d"


@pytest.fixture
def swarmlog(postgres_url, tmp_path, monkeypatch):
    return load_example("history_quirks", "swarmlog", postgres_url, tmp_path, monkeypatch)


def test_a_round_trip_whose_downgrade_leaves_a_type_fails_in_the_re_upgrade_saying_so(
    swarmlog, postgres_url
) -> None:
    run_migration(swarmlog, "upgrade", APP_ENUM)

    with pytest.raises(MigrationFailed) as failed:
        run_migration(swarmlog, "upgrade", "head", round_trip=True)

    message = str(failed.value)
    assert "round trip, phase 3 of 3 (re-upgrade, after the downgrade)" in message
    assert "cellstage" in message and HEAD in message
    assert revision_of(postgres_url) == APP_ENUM  # one transaction: all of it rolled back


def test_a_downgrade_that_cannot_run_stops_naming_its_revision_and_changes_nothing(
    swarmlog, postgres_url
) -> None:
    run_migration(swarmlog, "upgrade", "head")

    with pytest.raises(RunbookError) as failed:
        run_migration(swarmlog, "downgrade", "base", allow_data_loss=True)

    assert "b8000000002b" in str(failed.value)
    assert revision_of(postgres_url) == HEAD
