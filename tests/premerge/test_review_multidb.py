"""Issue 23: the pre-merge review of a multi-database project says, as a finding, that it cannot yet."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from softbee.runbook.cli import main
from tests.multidb import assemble, forget_app
from tests.premerge.support import branch, git

NEW_REVISION = '''"""tag colours"""
from alembic import op

revision = 'a1000000005e'
down_revision = 'a1000000004d'
branch_labels = None
depends_on = None


def upgrade(engine_name):
    globals()["upgrade_%s" % engine_name]()


def downgrade(engine_name):
    globals()["downgrade_%s" % engine_name]()


def upgrade_():
    op.execute("SELECT 1")


def downgrade_():
    pass


def upgrade_audit():
    pass


def downgrade_audit():
    pass
'''


def test_review_of_a_multi_database_project_is_a_one_line_finding_not_a_crash_or_a_pass(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = assemble(tmp_path / "twin")
    (repo / ".gitignore").write_text("__pycache__/\n*.sqlite3\n", encoding="utf-8")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "twin hives")
    branch(repo, "colours", {"migrations/versions/a1000000005e_tag_colours.py": NEW_REVISION})
    monkeypatch.chdir(repo)
    monkeypatch.setattr(sys, "path", list(sys.path))
    forget_app()
    capsys.readouterr()

    code = main(["review", "--base", "main", "--app", "twinhives:app", "--format", "json"])

    report = json.loads(capsys.readouterr().out)
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["project"] == "could not run" and code == 1
    [failed] = [f for f in report["findings"] if f["rule"] == "check-failed"]
    assert ("the pre-merge review is not supported for multi-database projects yet (binds "
            "['audit']") in failed["message"]
