"""Reading what a branch changes from git: added, edited, renamed, deleted, untracked; bounded."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from softbee.runbook.errors import ReviewError
from softbee.runbook.premerge.branch import files_at, git, read_branch, repository_root
from tests.premerge.support import git as run_git


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    versions = repo / "migrations" / "versions"
    versions.mkdir(parents=True)
    for name in ("a_one.py", "b_two.py", "c_three.py"):
        (versions / name).write_text(f"revision = {name[0]!r}\n", encoding="utf-8")
    (repo / "README").write_text("x\n")
    run_git(repo, "init", "-q", "-b", "main")
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "-m", "base")
    return repo


def test_the_branch_lists_added_edited_renamed_deleted_and_untracked_revision_files(tmp_path):
    repo = _repo(tmp_path)
    versions = repo / "migrations" / "versions"
    run_git(repo, "checkout", "-q", "-b", "feature")
    (versions / "d_four.py").write_text("revision = 'd'\n")
    (versions / "a_one.py").write_text("revision = 'a'\n# edited\n")
    (versions / "b_two.py").rename(versions / "b_renamed.py")
    (versions / "c_three.py").unlink()
    (repo / "README").write_text("not a revision\n")
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "-m", "feature")
    (versions / "e_five.py").write_text("revision = 'e'\n")  # untracked: still the branch's

    branch = read_branch(repo, "main", versions)

    got = {(c.status, c.path, c.old_path) for c in branch.changes}
    assert got == {("A", "migrations/versions/d_four.py", None),
                   ("M", "migrations/versions/a_one.py", None),
                   ("R", "migrations/versions/b_renamed.py", "migrations/versions/b_two.py"),
                   ("D", "migrations/versions/c_three.py", None),
                   ("A", "migrations/versions/e_five.py", None)}
    assert [c.path for c in branch.added] == ["migrations/versions/d_four.py",
                                              "migrations/versions/e_five.py"]
    assert branch.versions == "migrations/versions"


def test_a_revision_the_base_gained_after_the_branch_left_is_not_the_branchs_change(tmp_path):
    repo = _repo(tmp_path)
    versions = repo / "migrations" / "versions"
    run_git(repo, "checkout", "-q", "-b", "feature")
    (versions / "f_mine.py").write_text("revision = 'f'\n")
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "-m", "mine")
    run_git(repo, "checkout", "-q", "main")
    (versions / "g_theirs.py").write_text("revision = 'g'\n")
    (versions / "a_one.py").write_text("revision = 'a'\n# fixed on main\n")
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "-m", "theirs")
    run_git(repo, "checkout", "-q", "feature")

    branch = read_branch(repo, "main", versions)

    assert [(c.status, c.path) for c in branch.changes] == [("A", "migrations/versions/f_mine.py")]
    assert branch.base_commit != branch.merge_base
    assert "migrations/versions/g_theirs.py" in files_at(repo, branch.base_commit, branch.versions)


def test_files_at_reads_every_file_of_a_folder_at_a_commit_in_one_call(tmp_path):
    repo = _repo(tmp_path)
    (repo / "migrations" / "versions" / "a_one.py").write_text("revision = 'é'\n", encoding="utf-8")

    files = files_at(repo, "main", "migrations/versions")

    assert files == {f"migrations/versions/{n}": f"revision = {n[0]!r}\n"
                     for n in ("a_one.py", "b_two.py", "c_three.py")}


def test_an_unknown_base_says_to_fetch_it(tmp_path):
    repo = _repo(tmp_path)

    with pytest.raises(ReviewError, match=r"git does not know base 'origin/nope'.*git fetch origin nope"):
        read_branch(repo, "origin/nope", repo / "migrations" / "versions")


def test_an_option_is_not_taken_for_a_base(tmp_path):
    repo = _repo(tmp_path)

    with pytest.raises(ReviewError, match="is not a git reference"):
        read_branch(repo, "--output=/tmp/x", repo / "migrations" / "versions")


def test_a_folder_outside_git_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    folder = tmp_path / "plain"
    folder.mkdir()

    with pytest.raises(ReviewError, match="is not in a git repository") as refused:
        repository_root(folder)
    assert "\n" not in str(refused.value)


def test_a_git_that_hangs_is_stopped_at_the_bound(tmp_path, monkeypatch):
    """Every git call has a timeout: a hung one ends in a ReviewError, not a hung review."""
    fake = tmp_path / "bin" / "git"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexec sleep 60\n")  # exec: the killed process is the sleep
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")

    with pytest.raises(ReviewError, match=r"did not answer within 0.5 s"):
        git(tmp_path, "status", timeout=0.5)
