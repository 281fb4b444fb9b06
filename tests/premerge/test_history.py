"""The history checks, read from the revision files' text: edits, heads, down_revision."""

from __future__ import annotations

from pathlib import Path

from softbee.runbook.premerge.branch import Branch, ChangedFile
from softbee.runbook.premerge.history import (
    code_of,
    edited_findings,
    heads,
    history_findings,
    parse_revision,
)

V = "migrations/versions"


def rev(revision: str, down: str | tuple[str, ...] | None, extra: str = "") -> str:
    return (f'"""Do {revision}\n\nRevision ID: {revision}\n"""\nfrom alembic import op\n\n'
            f"revision = {revision!r}\ndown_revision = {down!r}\n\n\ndef upgrade():\n    pass{extra}\n")


def branch_of(*changes: ChangedFile) -> Branch:
    return Branch(Path("/repo"), "main", "b" * 40, "c" * 40, "d" * 40, V, tuple(changes))


BASE = {f"{V}/1.py": rev("r1", None), f"{V}/2.py": rev("r2", "r1")}


def test_parse_reads_plain_annotated_and_tuple_down_revisions_and_the_message():
    annotated = ("\"\"\"Add a thing\"\"\"\nfrom typing import Union\nrevision: str = 'abc'\n"
                 "down_revision: Union[str, None] = 'def'\n")
    merge = "revision = 'm'\ndown_revision = ('a', 'b')\n"

    assert parse_revision("x.py", annotated) == parse_revision("x.py", annotated)
    assert (parse_revision("x.py", annotated).revision, parse_revision("x.py", annotated).down,
            parse_revision("x.py", annotated).message) == ("abc", ("def",), "Add a thing")
    assert parse_revision("m.py", merge).down == ("a", "b") and parse_revision("m.py", merge).is_merge
    assert parse_revision("b.py", "revision = 'r'\ndown_revision = None\n").down == ()


def test_a_file_that_does_not_parse_is_still_placed_in_the_graph():
    broken = "revision = 'zz'  # the id\ndown_revision = 'r2'\ndef upgrade(:\n"

    parsed = parse_revision("broken.py", broken)

    assert (parsed.revision, parsed.down) == ("zz", ("r2",))


def test_code_of_ignores_comments_docstrings_and_formatting_but_not_code():
    text = rev("r2", "r1")

    assert code_of(text) == code_of(text.replace('"""Do r2', '"""Done r2') + "# a comment\n")
    assert code_of(text) != code_of(rev("r2", "r1", "\n    op.drop_table('x')"))


def test_edits_to_merged_revisions_are_errors_and_comment_only_edits_warnings():
    now = {f"{V}/1.py": rev("r1", None) + "# runbook: ignore[x] y\n",
           f"{V}/2.py": rev("r2", "r1", "\n    op.drop_table('x')")}
    branch = branch_of(ChangedFile("M", f"{V}/1.py"), ChangedFile("M", f"{V}/2.py"))

    found = {(f.rule, f.severity, f.revision) for f in edited_findings(branch, BASE, now)}

    assert found == {("merged-revision-comment-edit", "warning", "r1"),
                     ("edited-merged-revision", "error", "r2")}


def test_a_deleted_merged_revision_is_an_error_with_the_checkout_that_restores_it():
    [finding] = edited_findings(branch_of(ChangedFile("D", f"{V}/2.py")), BASE, {})

    assert finding.rule == "deleted-merged-revision" and finding.revision == "r2"
    assert f"git checkout {'c' * 12} -- {V}/2.py" in finding.fix


def test_a_new_revision_on_the_head_is_fine():
    now = {**BASE, f"{V}/3.py": rev("r3", "r2")}

    assert history_findings(branch_of(ChangedFile("A", f"{V}/3.py")), BASE, now) == []


def test_the_base_moved_on_the_new_revision_must_be_rebased_or_merged():
    """main gained r3 after the branch left it; the branch's r4 still starts at r2."""
    base = {**BASE, f"{V}/3.py": rev("r3", "r2")}
    now = {**BASE, f"{V}/4.py": rev("r4", "r2")}

    found = {f.rule: f for f in history_findings(branch_of(ChangedFile("A", f"{V}/4.py")), base, now)}

    assert set(found) == {"not-on-base-head", "several-heads"}
    assert f"in {V}/4.py set `down_revision = 'r3'`" in found["not-on-base-head"].fix
    assert 'flask db merge -m "Merge heads r3 and r4" r3 r4' in found["several-heads"].fix
    assert heads({p: parse_revision(p, t) for p, t in now.items()}) == ["r4"]


def test_a_merge_revision_joining_the_base_head_is_fine():
    base = {**BASE, f"{V}/3.py": rev("r3", "r2")}
    now = {**base, f"{V}/4.py": rev("r4", "r2"), f"{V}/5.py": rev("r5", ("r3", "r4"))}
    branch = branch_of(ChangedFile("A", f"{V}/4.py"), ChangedFile("A", f"{V}/5.py"))

    assert history_findings(branch, base, now) == []


def test_a_reused_revision_id_is_an_error():
    now = {**BASE, f"{V}/2b.py": rev("r2", "r1")}

    rules = [f.rule for f in history_findings(branch_of(ChangedFile("A", f"{V}/2b.py")), BASE, now)]

    assert "duplicate-revision-id" in rules
