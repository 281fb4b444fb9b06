"""Apps that migrate themselves on load are caught in the set-up step, before anything else runs.

beeyard's ``create_app()`` (config ``beeyard.config.Default``) calls ``flask_migrate.upgrade()``
on start. The runbooks read the recorded revision from the URL they were given before
loading the app and again after, and stop when the two differ.
"""

from __future__ import annotations

import pytest

from softbee.runbook.engine.migrate import run_migration
from softbee.runbook.errors import AppMigratedOnLoad
from tests.helpers import BEEYARD_APP, BEEYARD_REVISIONS, revision_of
from tests.notebooks import run_failing_runbook

FIRST, HEAD = BEEYARD_REVISIONS[0], BEEYARD_REVISIONS[-1]
SELF_MIGRATING_APP = "beeyard:create_app"


def test_an_app_whose_factory_migrates_is_stopped_naming_both_revisions(database_url: str, beeyard) -> None:
    """Loading beeyard:create_app moves the database from FIRST to HEAD: refused in one line saying so."""
    run_migration(beeyard(database_url), "upgrade", FIRST)

    with pytest.raises(AppMigratedOnLoad) as refused:
        beeyard(database_url, app=SELF_MIGRATING_APP)

    message = str(refused.value)
    assert "\n" not in message
    assert f"the app's factory migrated the database from {FIRST} to {HEAD}" in message
    assert 'create_app(\\"config.Runbook\\")' in message or 'create_app("config.Runbook")' in message
    assert (refused.value.before, refused.value.after) == (FIRST, HEAD)
    assert revision_of(database_url) == HEAD  # the factory did move it: that is what is reported


def test_from_base_the_move_is_reported_from_base(sqlite_url: str, beeyard) -> None:
    """A fresh database (no file yet) that the factory creates and migrates reads as base -> HEAD."""
    with pytest.raises(AppMigratedOnLoad, match=f"from base to {HEAD}"):
        beeyard(sqlite_url, app=SELF_MIGRATING_APP)


def test_a_factory_call_with_a_config_that_skips_the_upgrade_loads_without_moving(
    database_url: str, beeyard
) -> None:
    """beeyard:create_app("beeyard.config.Runbook") loads; the check ran and the database stayed."""
    run_migration(beeyard(database_url), "upgrade", FIRST)
    project = beeyard(database_url, app=BEEYARD_APP)
    assert project.load_check == f"checked: loading the app left the database at {FIRST}"
    assert revision_of(database_url) == FIRST


def test_a_url_only_the_app_knows_is_reported_as_not_checked(beeyard, monkeypatch) -> None:
    """Without database_url or DATABASE_URL the revision cannot be read before loading: said, not guessed."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    project = beeyard(None, app=BEEYARD_APP)
    assert project.load_check.startswith("not checked: the database URL comes from the app's config")


@pytest.mark.notebook
def test_the_runbook_stops_at_its_set_up_step(sqlite_url: str, beeyard, tmp_path) -> None:
    """upgrade_downgrade on the self-migrating factory fails in the set-up cell with the one line."""
    run_migration(beeyard(sqlite_url), "upgrade", FIRST)
    error, nb = run_failing_runbook(
        "upgrade_downgrade", tmp_path, cwd=beeyard.root, app=SELF_MIGRATING_APP,
        migrations_dir="migrations", database_url=sqlite_url,
    )
    assert error.ename == "AppMigratedOnLoad"
    assert f"from {FIRST} to {HEAD}" in error.evalue
    failed = [c for c in nb.cells if c.cell_type == "code"
              and any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert len(failed) == 1 and "load_project(" in failed[0].source
