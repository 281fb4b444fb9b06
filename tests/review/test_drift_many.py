"""drift_many: one app and one expected schema for many databases; a clean fingerprint skips reflection."""

from __future__ import annotations

from pathlib import Path

import pytest

from softbee.runbook.review import drift_many
from softbee.runbook.review.drift_many import FleetDrift
from tests.conftest import fresh_database
from tests.helpers import HEAD, MIGRATIONS, project_at
from tests.review.test_drift import THREE_CHANGES, change_by_hand


@pytest.mark.parametrize("any_database_url", ["sqlite", pytest.param(
    "postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_a_database_like_a_clean_one_is_clean_without_reflection_and_a_changed_one_is_not(
    any_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind = any_database_url.split(":", 1)[0].split("+")[0]
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    with fresh_database(kind, tmp_path / "b") as twin, fresh_database(kind, tmp_path / "c") as hand:
        for url in (any_database_url, twin, hand):
            project_at(url, HEAD).engine.dispose()
        change_by_hand(hand)
        check = FleetDrift("softbee:create_app", str(MIGRATIONS))
        assert check(any_database_url).lines == ()  # reflected and compared: its fingerprint kept

        compared: list[str] = []
        full = drift_many.check_drift
        monkeypatch.setattr(drift_many, "check_drift",
                            lambda project, *a, **k: compared.append(project.url.database)
                            or full(project, *a, **k))
        twin_found, hand_found = check(twin), check(hand)

    assert twin_found.lines == () and twin_found.revision == HEAD
    assert sorted(hand_found.lines) == THREE_CHANGES
    assert len(compared) == 1  # only the changed one was reflected


def test_an_unreachable_target_is_a_finding(tmp_path: Path) -> None:
    found = FleetDrift("softbee:create_app", str(MIGRATIONS))(
        "postgresql://postgres:secret@127.0.0.1:1/nowhere")

    assert not found.checked
    assert found.error is not None and found.error.startswith("drift could not be checked: ")
    assert "secret" not in found.error


@pytest.mark.postgres
def test_the_quick_read_of_a_locked_version_table_gives_up_within_its_lock_timeout(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone holds alembic_version: the quick read stops at its lock timeout (FleetDrift makes
    that a "could not be checked" finding) instead of waiting for them."""
    import threading

    import sqlalchemy as sa

    project_at(postgres_url, HEAD).engine.dispose()
    monkeypatch.setattr(drift_many, "QUICK_LOCK_TIMEOUT_MS", 300)
    holder = sa.create_engine(postgres_url)
    done: list[object] = []
    with holder.connect() as connection:
        connection.execute(sa.text("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE"))
        def read() -> None:
            try:
                done.append(drift_many.quick_read(postgres_url, skip=()))
            except Exception as exc:  # noqa: BLE001 - what FleetDrift turns into a finding
                done.append(exc)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(60)  # far beyond the bound; a read that waited for the holder is still here
        still_waiting = reader.is_alive()
        connection.rollback()
    holder.dispose()

    assert not still_waiting, "the quick read waited for the lock's holder"
    [outcome] = done  # gave up: the catalogue read, or the version table, hit the lock timeout
    assert "lock timeout" in str(outcome), outcome


def test_overlapping_scratch_builds_give_stdout_back() -> None:
    """Two builds in two threads, the first out first: stdout is the real one after both."""
    import sys

    from softbee.runbook.review.drift_many import _progress_to_stderr

    real = sys.stdout
    first, second = _progress_to_stderr(), _progress_to_stderr()
    first.__enter__()
    second.__enter__()
    assert sys.stdout is sys.stderr
    first.__exit__(None, None, None)
    assert sys.stdout is sys.stderr  # the second build still runs
    second.__exit__(None, None, None)
    assert sys.stdout is real
