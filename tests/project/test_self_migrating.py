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


# -- an app with no switch, migrating its own database (ihatemoney's and CTFd's shape) --------


def _honeyhouse(tmp_path, monkeypatch, own_url: str, database_url: str):
    """A loader of a copy of the example (its migrations inside the package), fresh each call."""
    import shutil
    import sys

    from softbee.runbook.project import load_project
    from tests.helpers import EXAMPLES

    root = tmp_path / "self_migrating_no_switch"
    shutil.copytree(EXAMPLES / root.name, root, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("HONEYHOUSE_DB_URL", own_url)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(root)

    def load():
        for name in [m for m in sys.modules if m == "honeyhouse" or m.startswith("honeyhouse.")]:
            monkeypatch.delitem(sys.modules, name)
        return load_project(app="honeyhouse:create_app", migrations_dir="honeyhouse/migrations",
                            database_url=database_url)

    return load


HONEYHOUSE_HEAD = "a7000000003c"


def test_a_factory_migrating_its_own_other_database_is_named_never_a_pass(tmp_path, monkeypatch):
    own = f"sqlite:///{tmp_path / 'own.sqlite3'}"
    load = _honeyhouse(tmp_path, monkeypatch, own, f"sqlite:///{tmp_path / 'runbook.sqlite3'}")

    with pytest.raises(AppMigratedOnLoad) as refused:
        load()

    message = str(refused.value)
    assert f"migrated its own database {own} (not the runbook's) from base to {HONEYHOUSE_HEAD}" in message
    assert "no runbook can guard" in message and "\n" not in message
    assert revision_of(own) == HONEYHOUSE_HEAD


def test_a_factory_with_no_switch_migrating_the_runbooks_database_says_it_happened(
    tmp_path, monkeypatch
):
    url = f"sqlite:///{tmp_path / 'runbook.sqlite3'}"
    load = _honeyhouse(tmp_path, monkeypatch, url, url)

    with pytest.raises(AppMigratedOnLoad, match=(
            f"migrated the database from base to {HONEYHOUSE_HEAD} .*has happened, unguarded.*"
            "an app with none migrates itself on every start")):
        load()


def test_a_factory_that_ran_upgrade_but_moved_nothing_is_said_in_the_load_check(
    tmp_path, monkeypatch
):
    url = f"sqlite:///{tmp_path / 'runbook.sqlite3'}"
    load = _honeyhouse(tmp_path, monkeypatch, url, url)
    with pytest.raises(AppMigratedOnLoad):
        load()  # the first load migrates it (refused, as above)
    monkeypatch.delenv("DATABASE_URL", raising=False)

    project = load()  # at head now: the factory's upgrade moves nothing

    assert project.load_check.startswith("checked:")
