"""Issue 23: the pre-merge review of a multi-database project reviews each bind on its own.

The two-database example in a git repository, a branch adding one revision with an
``upgrade_()`` for the default bind and an ``upgrade_audit()`` for the audit bind. Each
bind's checks run on a scratch place of its own (a SQLite file per bind by default, a
database per bind on a PostgreSQL server with --database-url, made and dropped by the test):
SQL and lint of that bind's function, its models against its head, a round trip.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from softbee.runbook.cli import main
from tests.conftest import create_pg_database, drop_pg_database
from tests.multidb import EXAMPLE, assemble, forget_app
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


BROKEN_AUDIT = NEW_REVISION.replace(
    "def upgrade_audit():\n    pass\n",
    "def upgrade_audit():\n"
    "    import sqlalchemy as sa\n"
    "    op.add_column('audit_events', sa.Column('colour', sa.String(20), nullable=True))\n"
    "    op.execute(\"UPDATE audit_events SET colour = 'red'\")\n")
# The audit models gain the column the revision adds, and one no revision makes.
MODELS = (EXAMPLE / "twinhives" / "__init__.py").read_text(encoding="utf-8").replace(
    "    note = db.Column(db.String(200), nullable=True)\n",
    "    note = db.Column(db.String(200), nullable=True)\n"
    "    colour = db.Column(db.String(20), nullable=True)\n"
    "    severity = db.Column(db.Integer, nullable=True)\n")


def _review(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
            files: dict[str, str], *extra: str) -> tuple[int, dict]:
    repo = assemble(tmp_path / "twin")
    (repo / ".gitignore").write_text("__pycache__/\n*.sqlite3\n", encoding="utf-8")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "twin hives")
    branch(repo, "colours", files)
    monkeypatch.chdir(repo)
    monkeypatch.setattr(sys, "path", list(sys.path))
    forget_app()
    capsys.readouterr()
    code = main(["review", "--base", "main", "--app", "twinhives:app", "--format", "json", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_each_bind_of_a_clean_revision_is_reviewed_and_passes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = _review(tmp_path, monkeypatch, capsys,
                           {"migrations/versions/a1000000005e_tag_colours.py": NEW_REVISION})
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert code == 0, report["findings"]
    for bind in ("default", "audit"):
        for check in ("sql", "lint", "models", "round trip"):
            assert statuses[f"{check} (bind {bind})"] == "passed", (check, bind, statuses)
    [revision] = report["revisions"]
    assert revision["sql"].startswith("-- bind default\n") and "-- bind audit\n" in revision["sql"]
    assert "SELECT 1" in revision["sql"].split("-- bind audit")[0]  # upgrade_() is the default's
    assert revision["sql_source"] == "bind default: offline; bind audit: offline"


def test_a_bind_s_lint_models_and_round_trip_findings_name_that_bind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = _review(tmp_path, monkeypatch, capsys, {
        "migrations/versions/a1000000005e_tag_colours.py": BROKEN_AUDIT,
        "twinhives/__init__.py": MODELS})
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert code == 1
    assert statuses["models (bind default)"] == statuses["round trip (bind default)"] == "passed"
    assert statuses["models (bind audit)"] == statuses["round trip (bind audit)"] == "failed"
    by_rule = {(f["check"], f["rule"]): f for f in report["findings"]}
    models = by_rule[("models", "model-change-without-revision")]
    assert models["message"].startswith("bind audit: the models have add_column "
                                        "audit_events.severity")
    trip = [f for f in report["findings"] if f["check"] == "round trip"]
    assert trip and all(f["message"].startswith("bind audit: ") for f in trip)
    lint = [f for f in report["findings"] if f["check"] == "lint"]
    assert lint and all(f["message"].startswith("bind audit: ") for f in lint), lint
    [revision] = report["revisions"]
    assert "UPDATE audit_events" in revision["sql"].split("-- bind audit")[1]


@pytest.mark.postgres
def test_on_a_postgresql_server_each_bind_gets_scratch_databases_of_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    server = create_pg_database()
    try:
        code, report = _review(tmp_path, monkeypatch, capsys,
                               {"migrations/versions/a1000000005e_tag_colours.py": NEW_REVISION},
                               "--database-url", server)
    finally:
        drop_pg_database(server)
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert code == 0, report["findings"]
    assert statuses["round trip (bind audit)"] == statuses["models (bind audit)"] == "passed"
    assert report["scratch"].startswith("postgresql at ")
    assert [f for f in report["findings"] if f["rule"] == "check-failed"] == []

