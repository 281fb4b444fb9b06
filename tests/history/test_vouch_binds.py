"""``archive verify --targets`` on targets with binds (issue 23): every bind's database vouched for.

A multi-database run writes history rows in each bind's database; its archived record keeps
one history fact per bind (``history_bind_<bind>``). End to end on the two-database example
(PostgreSQL + SQLite, made and dropped by the test): ``softbee-runbook run upgrade_downgrade``
twice (the audit bind left behind by the first), then ``archive verify --targets``, then a
history row deleted by hand in the audit database, which only that bind's check can see.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from softbee.runbook.archive.chain import read_index
from softbee.runbook.cli import main
from softbee.runbook.history.recorder import BIND_HISTORY_PREFIX
from softbee.runbook.util.history_name import HISTORY_TABLE
from tests.helpers import HUNG_AFTER_S, REPO_ROOT
from tests.multidb import APP, HEAD, assemble, execute, forget_app, recorded, two_databases

pytestmark = [pytest.mark.postgres, pytest.mark.notebook]


@pytest.fixture
def twin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str, str]]:
    """A copy of the example and its default (PostgreSQL) and audit (SQLite) databases."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    forget_app()
    folder = assemble(tmp_path / "twin")
    with two_databases("sqlite", tmp_path) as (default_url, audit_url):
        yield folder, default_url, audit_url


def _run(folder: Path, archive: Path, default_url: str, audit_url: str, *extra: str) -> None:
    env = {**os.environ, "AUDIT_DATABASE_URL": audit_url,
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "softbee.runbook", "run", "upgrade_downgrade", "-p", "app", APP,
         "-p", "migrations_dir", "migrations", "-p", "database_url", default_url, *extra,
         "--archive-dir", str(archive)],
        cwd=folder, env=env, capture_output=True, text=True, timeout=HUNG_AFTER_S)
    assert done.returncode == 0, done.stdout + done.stderr


def test_archive_verify_targets_checks_every_binds_history(twin, tmp_path, monkeypatch, capsys):
    folder, default_url, audit_url = twin
    archive = tmp_path / "archive"
    _run(folder, archive, default_url, audit_url, "-p", "binds", "[audit]", "-p", "target",
         "a1000000003c")
    _run(folder, archive, default_url, audit_url)  # the default bind from base, audit from 3c
    assert recorded(default_url) == recorded(audit_url) == HEAD
    second = read_index(archive)[-1]["extra_facts"]
    assert second[f"{BIND_HISTORY_PREFIX}audit"]["revision_before"] == "a1000000003c"
    assert second[f"{BIND_HISTORY_PREFIX}default"]["revision_before"] == "base"
    monkeypatch.setenv("A_URL", default_url)
    monkeypatch.setenv("A_AUDIT_URL", audit_url)
    targets = tmp_path / "targets.yml"
    targets.write_text("targets:\n"
                       "  - {name: tenant-a, url_env: A_URL, bind_url_env: {audit: A_AUDIT_URL}}\n")

    code = main(["archive", "verify", "--archive-dir", str(archive), "--targets", str(targets)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "tenant-a: OK, 1 run(s) agree with the archive" in out  # the default: run 2 only
    assert "tenant-a (bind audit): OK, 2 run(s) agree with the archive" in out

    execute(audit_url, f"DELETE FROM {HISTORY_TABLE} WHERE revision_to = '{HEAD}'")
    code = main(["archive", "verify", "--archive-dir", str(archive), "--targets", str(targets)])
    out = capsys.readouterr().out
    assert code == 1
    assert "tenant-a: OK" in out and "tenant-a (bind audit): 1 problem(s)" in out
    assert "tenant-a (bind audit): run " in out and "history row" in out
