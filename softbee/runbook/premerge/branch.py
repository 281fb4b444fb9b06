"""What a branch changes in the migrations, read from git: files added or changed since a base.

Every git call has a bound (:data:`GIT_TIMEOUT_S`); a folder that is not a git repository
or a base git does not know is a :class:`~softbee.runbook.errors.ReviewError` in one line
saying what to do (fetch the base in CI, where checkouts are shallow).

The branch is compared with the point it left the base (``git merge-base``), as
``git diff REF...HEAD`` does, and with what is in the working tree (uncommitted and
untracked revision files count): a revision the base gained after the branch left it is
not the branch's edit. The base's own revision files are read at ``REF`` itself (its head
is where a new revision must start).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from softbee.runbook.errors import ReviewError
from softbee.runbook.util.sqltext import one_line

GIT_TIMEOUT_S = 30.0  # a local git call takes milliseconds; this only catches a hung one


@dataclass(frozen=True)
class ChangedFile:
    """One revision file the branch touches: ``status`` A (added), M (modified), D (deleted), R (renamed)."""

    status: str
    path: str  # posix, relative to the repository root (the old path for D)
    old_path: str | None = None  # for R: where it was


@dataclass(frozen=True)
class Branch:
    """The branch against its base: the commits, and the revision files it adds or changes."""

    root: Path
    base: str  # as given, e.g. origin/main
    base_commit: str
    merge_base: str
    head_commit: str
    versions: str  # the versions folder, relative to root (posix)
    changes: tuple[ChangedFile, ...]

    @property
    def added(self) -> list[ChangedFile]:
        """Revision files that did not exist where the branch left the base."""
        return [c for c in self.changes if c.status == "A"]

    @property
    def edited(self) -> list[ChangedFile]:
        """Revision files that existed where the branch left the base and differ now (or are gone)."""
        return [c for c in self.changes if c.status in ("M", "D", "R")]


def git(root: Path, *args: str, timeout: float = GIT_TIMEOUT_S, stdin: str | None = None) -> str:
    """``git args`` in ``root``: its stdout; a failure or a hang raises :class:`ReviewError`."""
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              timeout=timeout, input=stdin, check=False)
    except FileNotFoundError:
        raise ReviewError("git is not installed: the review reads the branch from git; "
                          "install git") from None
    except subprocess.TimeoutExpired:
        raise ReviewError(f"`git {' '.join(args)}` did not answer within {timeout:g} s in "
                          f"{root}: check the repository (a lock file, a network mount)") from None
    if done.returncode != 0:
        raise ReviewError(f"`git {' '.join(args)}` failed in {root}: "
                          f"{one_line(done.stderr)[:300] or 'exit ' + str(done.returncode)}")
    return done.stdout


def repository_root(folder: Path) -> Path:
    """The top of the git work tree holding ``folder``; :class:`ReviewError` if there is none."""
    try:
        return Path(git(folder, "rev-parse", "--show-toplevel").strip()).resolve()
    except ReviewError:
        raise ReviewError(f"{folder} is not in a git repository: the review compares the "
                          "branch with a base commit; run it in a clone of the project") from None


def resolve(root: Path, ref: str) -> str:
    """The commit ``ref`` names; :class:`ReviewError` with the fetch to run when git does not know it."""
    if not ref.strip() or ref.startswith("-"):
        raise ReviewError(f"base {ref!r} is not a git reference: give a branch, tag or commit, "
                          "e.g. --base origin/main")
    try:
        return git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
    except ReviewError:
        raise ReviewError(f"git does not know base {ref!r} in {root}: fetch it first (in CI: "
                          f"`git fetch origin {ref.split('/')[-1]}`, or check out with "
                          "fetch-depth: 0)") from None


def read_branch(folder: Path, base: str, versions_dir: Path) -> Branch:
    """The revision files under ``versions_dir`` the work tree adds or changes since it left ``base``."""
    root = repository_root(folder)
    base_commit = resolve(root, base)
    head_commit = git(root, "rev-parse", "HEAD").strip()
    try:
        merge_base = git(root, "merge-base", base_commit, head_commit).strip()
    except ReviewError:
        raise ReviewError(f"base {base!r} and HEAD have no common history (a shallow clone?): "
                          "check out with fetch-depth: 0") from None
    try:
        versions = versions_dir.resolve().relative_to(root).as_posix()
    except ValueError:
        raise ReviewError(f"the migrations ({versions_dir}) are not inside the git repository "
                          f"at {root}: run the review from the project's repository") from None
    changes = _diff(root, merge_base, versions)
    untracked = git(root, "ls-files", "--others", "--exclude-standard", "--", versions)
    known = {c.path for c in changes}
    changes += [ChangedFile("A", path) for path in untracked.splitlines()
                if path.endswith(".py") and path not in known]
    return Branch(root, base, base_commit, merge_base, head_commit, versions,
                  tuple(sorted(changes, key=lambda c: c.path)))


def _diff(root: Path, merge_base: str, versions: str) -> list[ChangedFile]:
    """``git diff --name-status`` from ``merge_base`` to the work tree, revision files only."""
    out = git(root, "diff", "--name-status", "-M", merge_base, "--", versions)
    changes: list[ChangedFile] = []
    for line in out.splitlines():
        parts = line.split("\t")
        status = parts[0][:1]
        if status == "R" and len(parts) == 3:
            if parts[2].endswith(".py"):
                changes.append(ChangedFile("R", parts[2], parts[1]))
        elif status in ("A", "M", "D") and len(parts) == 2 and parts[1].endswith(".py"):
            changes.append(ChangedFile(status, parts[1]))
        elif status in ("C", "T") and parts[-1].endswith(".py"):
            changes.append(ChangedFile("A" if status == "C" else "M", parts[-1]))
    return changes


def files_at(root: Path, ref: str, folder: str) -> dict[str, str]:
    """Every ``.py`` file under ``folder`` at ``ref``: path -> text, read in one ``git cat-file`` call."""
    listing = git(root, "ls-tree", "-r", "--name-only", ref, "--", folder)
    paths = [p for p in listing.splitlines()
             if p.endswith(".py") and "__pycache__" not in PurePosixPath(p).parts]
    if not paths:
        return {}
    request = "".join(f"{ref}:{path}\n" for path in paths)
    try:
        done = subprocess.run(["git", "cat-file", "--batch"], cwd=root, input=request.encode(),
                              capture_output=True, timeout=GIT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise ReviewError(f"`git cat-file` did not answer within {GIT_TIMEOUT_S:g} s in "
                          f"{root}") from None
    return dict(zip(paths, _batch_texts(done.stdout), strict=False))


def _batch_texts(output: bytes) -> list[str]:
    """The objects of ``git cat-file --batch`` output, in order ("" for a missing one)."""
    texts, at = [], 0
    while at < len(output):
        end = output.index(b"\n", at)
        header = output[at:end].split()
        at = end + 1
        if len(header) < 3 or header[-1] == b"missing":
            texts.append("")
            continue
        size = int(header[2])
        texts.append(output[at:at + size].decode("utf-8", errors="replace"))
        at += size + 1
    return texts


def file_at(root: Path, ref: str, path: str) -> str | None:
    """``path`` as it is at ``ref``, or None when it does not exist there."""
    try:
        return git(root, "show", f"{ref}:{path}")
    except ReviewError:
        return None
