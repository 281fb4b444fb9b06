"""``softbee-runbook review`` on a git repository of a Soft-Bee copy: one branch per story.

A ``main`` branch holds Soft-Bee at its head; each branch adds (a) a safe revision with its
model, (b) a full-table UPDATE on a table the stats file says is large, (c) an edit to an
already-merged revision, (d) a second head, (e) a model change without a revision, (f) a
risky revision with an inline ignore and its reason, and 30 revisions for the size of the
PR comment. Branches that add models run the CLI in a process of its own (a model stays
in the process's metadata); the others call the CLI's ``main`` in this one, to keep the
suite fast. The scratch databases are temporary SQLite files, and one case uses PostgreSQL.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from softbee.runbook.cli import main
from tests.helpers import HEAD, HIVE_HEALTH
from tests.premerge.support import (
    APP,
    HIVE_NOTE_MODEL,
    assert_renders,
    branch,
    git,
    make_repo,
    review_cli,
    revision,
)

LARGE_UPDATE = 'op.execute("UPDATE users SET first_name = trim(first_name)")'
STATS = {"version": 1, "dialect": "postgresql", "tables": {
    "users": {"rows": 40_000_000, "table_bytes": 12 * 1024 ** 3, "index_bytes": 3 * 1024 ** 3},
    "hives": {"rows": 5_000, "table_bytes": 2 * 1024 ** 2},
}}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    made = make_repo(tmp_path / "softbee-copy")
    (tmp_path / "stats.json").write_text(json.dumps(STATS), encoding="utf-8")
    return made


def stats(repo: Path) -> str:
    return str(repo.parent / "stats.json")


def review(repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
           *args: str) -> tuple[int, str, str]:
    """The CLI's ``main`` in this process, from ``repo``: (exit status, stdout, stderr)."""
    monkeypatch.chdir(repo)
    monkeypatch.setattr(sys, "path", list(sys.path))  # load_project adds the project root
    for name in [m for m in sys.modules if m == "beeapp" or m.startswith("beeapp.")]:
        monkeypatch.delitem(sys.modules, name)
    capsys.readouterr()
    code = main(["review", "--base", "main", "--app", APP, *args])
    out, err = capsys.readouterr()
    return code, out, err


# -- (a) to (f) --------------------------------------------------------------------------------


def test_a_safe_revision_with_its_model_passes_with_one_junit_case_per_check(repo, tmp_path):
    path, text = revision("a1a1a1a1a1a1", HEAD, "op.create_table('hive_notes',\n"
                          "    sa.Column('id', sa.Integer(), nullable=False),\n"
                          "    sa.Column('body', sa.Text(), nullable=True),\n"
                          "    sa.PrimaryKeyConstraint('id', name=op.f('pk_hive_notes')))",
                          "op.drop_table('hive_notes')", message="Create hive_notes table for remarks")
    branch(repo, "safe", {path: text, "beeapp/__init__.py": (repo / "beeapp/__init__.py").read_text()
                          + HIVE_NOTE_MODEL})
    junit = tmp_path / "review.xml"

    done = review_cli(repo, "--stats", stats(repo), "--format", "json", "--junit", str(junit))

    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert [r["revision"] for r in report["revisions"]] == ["a1a1a1a1a1a1"]
    assert report["counts"]["error"] == 0 and report["verdict"] == "passed"
    assert "CREATE TABLE hive_notes" in report["revisions"][0]["sql"]
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["models"] == statuses["round trip"] == statuses["history"] == "passed"
    cases = ET.parse(junit).getroot().findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == [
        f"{c['name']} {c['revision']}" if c["revision"] else c["name"] for c in report["checks"]]
    assert not [c for c in cases if c.find("failure") is not None or c.find("error") is not None]


def test_b_a_full_table_update_on_a_large_table_fails_naming_the_rule_and_the_online_fix(
        repo, monkeypatch, capsys):
    branch(repo, "big-update", dict([revision("b2b2b2b2b2b2", HEAD, LARGE_UPDATE,
                                              message="Trim spaces from users first names")]))

    code, out, err = review(repo, monkeypatch, capsys, "--stats", stats(repo), "--format", "markdown")

    assert code == 1, out
    assert "`large-table-update`" in out and "UPDATE users: 40,000,000 rows" in out
    assert "online.backfill" in out
    assert "`lock-time-over-threshold`" in out and "3 min" in out
    assert "review failed" in err
    seen = assert_renders(out)
    assert seen.get("table", 0) >= 2 and seen.get("details") == 1


def test_c_an_edit_to_an_already_merged_revision_fails(repo, monkeypatch, capsys):
    merged = next((repo / "migrations" / "versions").glob(f"{HEAD}_*.py"))
    edited = merged.read_text().replace(
        "def downgrade():\n", "def downgrade():\n    op.execute('DELETE FROM treatments')\n")
    branch(repo, "edit-merged", {merged.relative_to(repo).as_posix(): edited})

    code, out, _err = review(repo, monkeypatch, capsys)

    assert code == 1, out
    assert f"error: edited-merged-revision [{HEAD}]" in out
    assert f"git checkout {git(repo, 'merge-base', 'main', 'HEAD').strip()[:12]} -- " in out


def test_d_a_second_head_fails_with_the_merge_command(repo, monkeypatch, capsys):
    branch(repo, "second-head", dict([revision(
        "d4d4d4d4d4d4", HIVE_HEALTH, "op.execute(\"UPDATE hives SET hive_type = 'top-bar' "
        "WHERE hive_type = 'tbh'\")", message="Rename the tbh hive type to top-bar")]))

    code, out, _err = review(repo, monkeypatch, capsys)

    assert code == 1, out
    heads = sorted([HEAD, "d4d4d4d4d4d4"])
    assert f'flask db merge -m "Merge heads {heads[0]} and {heads[1]}" {heads[0]} {heads[1]}' in out
    assert "not-on-base-head" in out and f"down_revision = '{HEAD}'" in out
    assert "check round trip: skipped (not run: the history has 2 heads" in out


def test_e_a_model_change_without_a_revision_fails(repo):
    branch(repo, "model-only", {"beeapp/__init__.py": (repo / "beeapp/__init__.py").read_text()
                                + HIVE_NOTE_MODEL})

    done = review_cli(repo)

    assert done.returncode == 1, done.stdout + done.stderr
    assert "error: model-change-without-revision: the models have add_table hive_notes" in done.stdout


def test_f_a_risky_revision_with_an_inline_ignore_and_its_reason_passes_listing_it(
        repo, monkeypatch, capsys):
    reason = "users is trimmed in the announced maintenance window, writes stopped"
    branch(repo, "ignored", dict([revision(
        "f6f6f6f6f6f6", HEAD, LARGE_UPDATE, message="Trim spaces from users first names",
        comments=f"# runbook: ignore[large-table-update, lock-time-over-threshold] {reason}\n")]))

    code, out, _err = review(repo, monkeypatch, capsys, "--stats", stats(repo), "--format", "json")

    assert code == 0, out
    report = json.loads(out)
    assert sorted((i["rule"], i["reason"]) for i in report["ignored"]) == [
        ("large-table-update", reason), ("lock-time-over-threshold", reason)]
    assert report["counts"]["error"] == 0


def test_an_ignore_without_a_reason_ignores_nothing_and_is_a_finding(repo, monkeypatch, capsys):
    branch(repo, "lazy-ignore", dict([revision(
        "f7f7f7f7f7f7", HEAD, LARGE_UPDATE, message="Trim spaces from users first names",
        comments="# runbook: ignore[large-table-update]\n")]))

    code, out, _err = review(repo, monkeypatch, capsys, "--stats", stats(repo))

    assert code == 1, out
    assert "error: ignore-without-reason [f7f7f7f7f7f7]" in out
    assert "error: large-table-update [f7f7f7f7f7f7]" in out


# -- a long branch: the comment stays under GitHub's limit ------------------------------------


def test_thirty_revisions_give_a_comment_under_the_limit_that_renders(repo, monkeypatch, capsys,
                                                                       tmp_path):
    files, down = {}, HEAD
    for n in range(30):
        rev = f"{n:02d}" + "c" * 10
        cases = " ".join(f"WHEN {i} THEN 'hive number {i} of the north apiary'" for i in range(60))
        upgrade = f'op.execute("UPDATE hives SET hive_type = CASE id {cases} ELSE hive_type END WHERE id < 0")'
        path, text = revision(rev, down, upgrade, message=f"Relabel hive types step {n}")
        files[path], down = text, rev
    branch(repo, "long", files)
    junit = tmp_path / "junit.xml"

    code, out, _err = review(repo, monkeypatch, capsys, "--format", "markdown", "--junit", str(junit))

    assert code == 0, out[-3000:]
    assert len(out) < 65_536
    seen = assert_renders(out)
    assert seen.get("details") == 30
    assert "SQL cut" in out or "SQL left out" in out
    names = [c.get("name") for c in ET.parse(junit).getroot().iter("testcase")]
    assert len(names) == len(set(names))
    assert {f"{check} {n:02d}cccccccccc" for n in range(30) for check in ("sql", "lint")} <= set(names)
    assert {"edited revisions", "history", "models", "round trip"} <= set(names)


# -- PostgreSQL as the scratch server ----------------------------------------------------------


@pytest.mark.postgres
def test_on_a_postgresql_scratch_server_the_large_update_fails_the_same_way(
        repo, monkeypatch, capsys, postgres_url):
    branch(repo, "big-update", dict([revision("b3b3b3b3b3b3", HEAD, LARGE_UPDATE,
                                              message="Trim spaces from users first names")]))

    code, out, _err = review(repo, monkeypatch, capsys, "--stats", stats(repo),
                             "--database-url", postgres_url, "--format", "json")

    assert code == 1
    report = json.loads(out)
    assert report["scratch"].startswith("postgresql at ")
    assert {f["rule"] for f in report["findings"]} >= {"large-table-update", "lock-time-over-threshold"}
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["models"] == statuses["round trip"] == "passed"


# -- bad input: exit 2 -------------------------------------------------------------------------


def test_an_unknown_base_is_a_usage_error_in_one_line(repo, monkeypatch, capsys):
    monkeypatch.chdir(repo)

    code = main(["review", "--base", "no-such-branch", "--app", APP])

    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "git does not know base 'no-such-branch'" in err


def test_outside_a_git_repository_the_review_says_so(tmp_path, monkeypatch, capsys):
    project = tmp_path / "no-git"
    (project / "migrations").mkdir(parents=True)
    (project / "migrations" / "env.py").write_text("", encoding="utf-8")
    monkeypatch.chdir(project)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))

    code = main(["review", "--base", "main"])

    assert code == 2
    assert "is not in a git repository" in capsys.readouterr().err


def test_a_revision_that_does_not_import_is_a_finding_and_the_other_checks_still_run(
        repo, monkeypatch, capsys):
    path, text = revision("e5e5e5e5e5e5", HEAD, "op.execute('SELECT 1')",
                          message="Check something on hives")
    branch(repo, "broken", {path: text.replace("from alembic import op",
                                               "from alembic import op\nimport no_such_module")})

    code, out, _err = review(repo, monkeypatch, capsys, "--format", "json")

    assert code == 1
    report = json.loads(out)
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["project"] == "could not run" and statuses["history"] == "passed"
    assert statuses["models"] == statuses["round trip"] == "skipped"
    [failed] = [f for f in report["findings"] if f["rule"] == "check-failed"]
    assert failed["message"].startswith("check project could not run: ") and "no_such_module" in failed["message"]


def test_a_revision_that_reads_rows_is_captured_on_a_scratch_database_and_linted(
        repo, monkeypatch, capsys):
    upgrade = ("hives = op.get_bind().execute(sa.text('SELECT count(*) FROM hives')).scalar()\n"
               "op.execute(f\"UPDATE users SET last_name = upper(last_name) WHERE {hives} >= 0\")")
    branch(repo, "reads-rows", dict([revision("c3c3c3c3c3c3", HEAD, upgrade,
                                              message="Upper-case last names when hives exist")]))

    code, out, _err = review(repo, monkeypatch, capsys, "--stats", stats(repo), "--format", "json")

    report = json.loads(out)
    [rev] = report["revisions"]
    assert rev["sql_source"] == "captured on a scratch database"
    assert "UPDATE users SET last_name = upper(last_name) WHERE 0 >= 0" in rev["sql"]
    rules = {f["rule"] for f in report["findings"]}
    assert {"needs-live-connection", "large-table-update"} <= rules and code == 1
