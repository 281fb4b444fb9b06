"""The history checks of a branch review, read from the revision files' text (nothing imported).

* an already-merged revision edited or deleted (its file differs from where the branch left
  the base): databases that ran it never run the change, as Flyway's ``validate`` says;
* the history after the merge: several heads, or a new revision that does not start at the
  base's head, each with the exact ``flask db merge`` or rebase that fixes it.

A revision file is read with :mod:`ast` (``revision``, ``down_revision``, the docstring), so
a file that does not import (a syntax error, an import the review cannot satisfy) is still
placed in the graph.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass

from softbee.runbook.premerge.branch import Branch
from softbee.runbook.premerge.checks import Finding

_ASSIGNED = re.compile(r"^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(.+)$", re.MULTILINE)


@dataclass(frozen=True)
class RevisionFile:
    """What a revision file says about its place in the history."""

    path: str
    revision: str | None
    down: tuple[str, ...]
    message: str

    @property
    def is_merge(self) -> bool:
        """True for a merge revision (several ``down_revision``)."""
        return len(self.down) > 1


def parse_revision(path: str, text: str) -> RevisionFile:
    """``revision``, ``down_revision`` and the docstring's first line of a revision file's text."""
    values: dict[str, object] = {}
    message = ""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        for name, value in _ASSIGNED.findall(text):
            try:
                values.setdefault(name, ast.literal_eval(value.split("#")[0].strip()))
            except (ValueError, SyntaxError):
                continue
    else:
        lines = (ast.get_docstring(tree) or "").strip().splitlines()
        message = lines[0].strip() if lines else ""
        for node in tree.body:
            target, value = None, None
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                try:
                    values[target.id] = ast.literal_eval(value)
                except ValueError:
                    continue
    revision = values.get("revision")
    down = values.get("down_revision")
    downs = (down,) if isinstance(down, str) else tuple(d for d in (down or ()) if isinstance(d, str))
    return RevisionFile(path, revision if isinstance(revision, str) else None, downs, message)


def heads(files: Mapping[str, RevisionFile]) -> list[str]:
    """The revisions nothing builds on, sorted."""
    ids = {f.revision for f in files.values() if f.revision}
    below = {d for f in files.values() for d in f.down}
    return sorted(ids - below)


def code_of(text: str) -> str | None:
    """The file's code without comments, docstrings and formatting (None: it does not parse)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            body.pop(0)
    return ast.dump(tree)


def edited_findings(branch: Branch, before: Mapping[str, str], now: Mapping[str, str]) -> list[Finding]:
    """Each merged revision the branch edits, renames or deletes (``before``: the files where it left the base)."""
    findings: list[Finding] = []
    point = branch.merge_base[:12]
    for change in branch.edited:
        old_path = change.old_path or change.path
        old_text = before.get(old_path, "")
        revision = parse_revision(old_path, old_text).revision or old_path
        restore = f"`git checkout {point} -- {old_path}`"
        if change.status == "D":
            findings.append(Finding(
                "edited", "deleted-merged-revision", "error",
                f"{old_path} (revision {revision}) is deleted, but it was merged before this "
                "branch: databases that ran it no longer find it in the scripts",
                f"restore it ({restore}); to undo what it did, add a new revision on top",
                revision))
            continue
        new_text = now.get(change.path, "")
        moved = f" (renamed to {change.path})" if change.status == "R" else ""
        if change.status != "R" and code_of(old_text) is not None and code_of(old_text) == code_of(new_text):
            findings.append(Finding(
                "edited", "merged-revision-comment-edit", "warning",
                f"{change.path} (revision {revision}) was merged before this branch and its "
                "comments or formatting changed (its code did not)",
                f"keep merged revisions as they were ({restore}) so every checkout reviews the same file",
                revision))
            continue
        findings.append(Finding(
            "edited", "edited-merged-revision", "error",
            f"{old_path} (revision {revision}) was merged before this branch and the branch "
            f"changes it{moved}: databases that already ran it will never run the change",
            f"revert it ({restore}) and put the change in a new revision on top of the head",
            revision))
    return findings


def merged_tree(branch: Branch, base_files: Mapping[str, str], now: Mapping[str, str]) -> dict[str, str]:
    """The revision files as they will be once the branch is merged into the base (path -> text)."""
    tree = dict(base_files)
    for change in branch.changes:
        if change.old_path:
            tree.pop(change.old_path, None)
        if change.status == "D":
            tree.pop(change.path, None)
        elif change.path in now:
            tree[change.path] = now[change.path]
    return tree


def history_findings(branch: Branch, base_files: Mapping[str, str], now: Mapping[str, str]) -> list[Finding]:
    """Several heads after the merge, a new revision not on the base's head, a reused revision id."""
    base = {path: parse_revision(path, text) for path, text in base_files.items()}
    merged = {path: parse_revision(path, text) for path, text in merged_tree(branch, base_files, now).items()}
    base_heads, merged_heads = heads(base), heads(merged)
    base_ids = {f.revision for f in base.values() if f.revision}
    added = [merged[c.path] for c in branch.changes if c.status == "A" and c.path in merged]
    new = [f for f in added if f.revision not in base_ids]
    findings: list[Finding] = []
    ref = branch.base
    for f in added:
        if f.revision is None:
            findings.append(Finding("history", "unreadable-revision", "error",
                                    f"{f.path} names no `revision = '...'` the review can read",
                                    "give it the header `flask db migrate` writes", None))
        elif f.revision in base_ids and all(b.path != f.path for b in base.values() if b.revision == f.revision):
            findings.append(Finding(
                "history", "duplicate-revision-id", "error",
                f"{f.path} reuses revision id {f.revision}, which {ref} already has in another file",
                "give it a new id (`flask db revision` writes one) and keep the merged file",
                f.revision))
    new_ids = {f.revision for f in new}
    joined = len(merged_heads) == 1 and len(base_heads) == 1 and base_heads[0] in _ancestors(
        merged, merged_heads[0])  # a merge revision of the branch joins the base's head: fine
    if len(base_heads) == 1 and not joined:
        head = base_heads[0]
        for f in new:
            if f.revision and not (set(f.down) & new_ids) and head not in f.down:
                was = ", ".join(f.down) or "None (base)"
                findings.append(Finding(
                    "history", "not-on-base-head", "error",
                    f"{f.path}: revision {f.revision} starts at down_revision {was}, but {ref}'s "
                    f"head is {head}: merged, the history would branch",
                    f"rebase: `git rebase {ref}`, then in {f.path} set "
                    f"`down_revision = '{head}'` (and `Revises: {head}` in its docstring)",
                    f.revision))
    if len(merged_heads) > 1:
        merge = f'flask db merge -m "Merge heads {" and ".join(merged_heads)}" {" ".join(merged_heads)}'
        findings.append(Finding(
            "history", "several-heads", "error",
            f"merged into {ref}, the history has {len(merged_heads)} heads "
            f"({', '.join(merged_heads)}): `flask db upgrade` refuses to choose between them",
            f"rebase the new revision onto {', '.join(base_heads) or 'the head'} (see "
            f"not-on-base-head), or if both lines must stay, merge them: `{merge}`",
            None))
    return findings


def _ancestors(files: Mapping[str, RevisionFile], revision: str) -> set[str]:
    """``revision`` and every revision below it."""
    by_id = {f.revision: f for f in files.values() if f.revision}
    seen, todo = set(), [revision]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(by_id[current].down if current in by_id else ())
    return seen
