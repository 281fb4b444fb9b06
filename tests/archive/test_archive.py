"""archive: files laid out by date, one chained record per run, and verify catches tampering."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from softbee.runbook import archive
from softbee.runbook.archive import (
    ARCHIVE_DIR_ENV,
    GENESIS_HASH,
    HEAD_NAME,
    INDEX_NAME,
    append_record,
    archive_run,
    chain,
    chain_hash,
    find_run,
    list_runs,
    read_index,
    verify_archive,
)
from softbee.runbook.archive.summary import MIME_TYPE
from softbee.runbook.errors import ArchiveError
from tests.helpers import HUNG_AFTER_S

T0 = dt.datetime(2024, 3, 5, 7, 8, 9, tzinfo=dt.UTC)
FACTS = {
    "runbook": "upgrade_downgrade",
    "database": {
        "dialect": "postgresql",
        "host": "db",
        "port": 5432,
        "database": "softbee",
        "password": "x",
    },
    "environment": "staging",
    "revision_before": "aaa111",
    "revision_after": "bbb222",
    "row_counts": [{"table": "users", "before": 3, "after": 5, "delta": 2}],
    "outcome": "upgraded to bbb222",
    "rehearsal": False,
}


def _notebook(facts: dict | None = None) -> nbformat.NotebookNode:
    outputs = (
        [new_output("display_data", data={MIME_TYPE: facts, "text/plain": "facts"})]
        if facts
        else []
    )
    return new_notebook(
        cells=[new_markdown_cell("# A runbook"), new_code_cell("record()", outputs=outputs)]
    )


def _archive(
    directory: Path,
    run_id: str,
    *,
    minutes: int = 0,
    error: dict | None = None,
    runbook: str = "upgrade_downgrade",
    facts: dict | None = FACTS,
) -> archive.ArchivedRun:
    started = T0 + dt.timedelta(minutes=minutes)
    return archive_run(
        _notebook(facts),
        directory=directory,
        runbook=runbook,
        run_id=run_id,
        started=started,
        finished=started + dt.timedelta(seconds=2.5),
        parameters={"target": "head", "api_token": "***"},
        error=error,
        project_dir=directory.parent,
    )


@pytest.fixture
def three_runs(tmp_path: Path) -> Path:
    """An archive with two passed runs and one failed, a minute apart."""
    directory = tmp_path / "archive"
    _archive(directory, "run000000001")
    _archive(directory, "run000000002", minutes=1, runbook="inspect_diff", facts=None)
    _archive(
        directory,
        "run000000003",
        minutes=2,
        error={"type": "RuntimeError", "message": "boom", "cell": 3, "step": "Step 2"},
    )
    return directory


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- writing ----------------------------------------------------------------------------------


def test_a_run_is_written_as_notebook_and_html_under_its_utc_date(tmp_path):
    run = _archive(tmp_path / "archive", "abc123def456")

    stem = "2024/03/05/20240305T070809Z_upgrade_downgrade_abc123def456"
    assert run.notebook == tmp_path / "archive" / f"{stem}.ipynb"
    assert run.html == tmp_path / "archive" / f"{stem}.html"
    assert nbformat.read(run.notebook, as_version=4).cells[0].source == "# A runbook"
    assert "<html" in run.html.read_text(encoding="utf-8")
    assert (run.record["notebook"], run.record["html"]) == (f"{stem}.ipynb", f"{stem}.html")
    assert run.record["notebook_sha256"] == _sha(run.notebook)
    assert run.record["html_sha256"] == _sha(run.html)
    assert not [p for p in run.notebook.parent.iterdir() if p.name.startswith(".")]  # no temp files


def test_the_record_carries_the_facts_read_from_the_archived_notebook(tmp_path):
    run = _archive(tmp_path / "archive", "abc123def456")
    record = run.record

    assert record["status"] == "passed" and run.passed
    assert record["started_at"] == "2024-03-05T07:08:09.000Z"
    assert record["duration_s"] == 2.5
    assert record["database"] == {
        "dialect": "postgresql",
        "host": "db",
        "port": 5432,
        "database": "softbee",
    }
    assert (record["revision_before"], record["revision_after"]) == ("aaa111", "bbb222")
    assert record["row_counts"] == FACTS["row_counts"]
    assert record["environment"] == "staging" and record["outcome"] == "upgraded to bbb222"
    assert record["extra_facts"] == {"rehearsal": False}  # facts beyond the documented keys
    assert record["parameters"] == {"target": "head", "api_token": "***"}
    assert record["error"] is None
    assert record["git_commit"] is None  # tmp_path is no git repository
    assert record["host"] and "user" in record
    assert read_index(tmp_path / "archive") == [record]


def test_a_failed_run_records_status_failed_and_its_error(three_runs):
    failed = find_run(three_runs, "run000000003")

    assert failed.record["status"] == "failed" and not failed.passed
    assert failed.record["error"] == {
        "type": "RuntimeError",
        "message": "boom",
        "cell": 3,
        "step": "Step 2",
    }


def test_records_are_chained_by_hash_from_the_genesis(three_runs):
    records = read_index(three_runs)

    assert records[0]["prev_hash"] == GENESIS_HASH
    for previous, record in itertools.pairwise(records):
        assert record["prev_hash"] == previous["hash"]
    for record in records:
        assert record["hash"] == chain_hash(record["prev_hash"], record)


def test_the_database_identity_keeps_dialect_host_port_and_name_and_drops_the_rest():
    identity = {"dialect": "postgresql", "host": "db", "port": 5432, "database": "prod"}

    assert archive.database_identity({**identity, "password": "pw123456"}) == identity


def test_a_database_recorded_as_a_url_keeps_no_password(tmp_path):
    """A runbook of one's own may record the URL (the toy ``leaky`` runbook does)."""
    facts = {"database": "postgresql://app:pw123456@db.example:6432/prod"}

    run = _archive(tmp_path / "archive", "abc123def456", facts=facts)

    assert run.record["database"] == {
        "dialect": "postgresql",
        "host": "db.example",
        "port": 6432,
        "database": "prod",
    }
    assert "pw123456" not in (tmp_path / "archive" / INDEX_NAME).read_text(encoding="utf-8")


def test_the_git_commit_of_the_project_is_recorded(git_project, tmp_path):
    project, head = git_project
    assert archive.git_commit(project) == head
    assert archive.git_commit(tmp_path / "archive-does-not-exist") is None


# -- where ------------------------------------------------------------------------------------


def test_the_archive_dir_is_the_option_then_the_environment_then_archive_at_the_project_root(
    monkeypatch, tmp_path
):
    monkeypatch.delenv("SOFTBEE_PROJECT_ROOT", raising=False)
    assert archive.archive_dir(tmp_path / "opt") == tmp_path / "opt"
    monkeypatch.setenv(ARCHIVE_DIR_ENV, str(tmp_path / "env"))
    assert archive.archive_dir() == tmp_path / "env"
    monkeypatch.delenv(ARCHIVE_DIR_ENV)
    monkeypatch.chdir(tmp_path)
    assert archive.archive_dir() == tmp_path.resolve() / "archive"  # no root set: the cwd


def test_the_default_archive_follows_softbee_project_root_like_the_migrations_do(
    monkeypatch, tmp_path
):
    """``make lab`` sets SOFTBEE_PROJECT_ROOT: the archive is beside migrations/, not in the cwd."""
    root, elsewhere = tmp_path / "project", tmp_path / "notebooks"
    root.mkdir()
    elsewhere.mkdir()
    monkeypatch.delenv(ARCHIVE_DIR_ENV, raising=False)
    monkeypatch.setenv("SOFTBEE_PROJECT_ROOT", str(root))
    monkeypatch.chdir(elsewhere)

    assert archive.archive_dir() == root.resolve() / "archive"
    monkeypatch.setenv(ARCHIVE_DIR_ENV, str(tmp_path / "env"))
    assert archive.archive_dir() == tmp_path / "env"  # the variable still wins


def test_an_archive_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x", encoding="utf-8")

    with pytest.raises(ArchiveError, match="not a directory"):
        archive.check_writable(tmp_path / "file")
    archive.check_writable(tmp_path / "new" / "archive")  # missing but creatable: fine
    assert not (tmp_path / "new").exists()


# -- reading ----------------------------------------------------------------------------------


def test_list_runs_filters_by_runbook_status_and_start(three_runs):
    assert [r["run_id"] for r in list_runs(three_runs)] == [
        "run000000001",
        "run000000002",
        "run000000003",
    ]
    assert [r["run_id"] for r in list_runs(three_runs, runbook="inspect_diff")] == ["run000000002"]
    assert [r["run_id"] for r in list_runs(three_runs, status="failed")] == ["run000000003"]
    since = T0 + dt.timedelta(seconds=30)
    assert [r["run_id"] for r in list_runs(three_runs, since=since)] == [
        "run000000002",
        "run000000003",
    ]


def test_find_run_takes_a_unique_prefix_and_refuses_unknown_or_ambiguous_ids(three_runs):
    assert find_run(three_runs, "run000000002").record["runbook"] == "inspect_diff"
    with pytest.raises(ArchiveError, match="ambiguous"):
        find_run(three_runs, "run0000")
    with pytest.raises(ArchiveError, match="no run 'zzz'"):
        find_run(three_runs, "zzz")


# -- verify -----------------------------------------------------------------------------------


def test_verify_passes_on_a_clean_archive(three_runs):
    assert verify_archive(three_runs) == []


@pytest.mark.parametrize("key", ["notebook", "html"])
def test_verify_names_a_file_after_one_byte_of_it_changes(three_runs, key):
    relative = read_index(three_runs)[1][key]
    path = three_runs / relative
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    problems = verify_archive(three_runs)

    assert [(p.where, p.issue) for p in problems] == [
        (relative, "changed since it was archived (run run000000002)")
    ]


def test_verify_names_a_removed_file(three_runs):
    relative = read_index(three_runs)[0]["html"]
    (three_runs / relative).unlink()

    assert [str(p) for p in verify_archive(three_runs)] == [
        f"{relative}: removed (run run000000001)"
    ]


@pytest.mark.parametrize("deleted", [0, 1, 2])
def test_verify_catches_a_record_deleted_from_the_index(three_runs, deleted):
    index = three_runs / INDEX_NAME
    lines = index.read_text(encoding="utf-8").splitlines(keepends=True)
    gone = json.loads(lines[deleted])
    index.write_text("".join(lines[:deleted] + lines[deleted + 1 :]), encoding="utf-8")

    problems = verify_archive(three_runs)

    named = {p.where for p in problems}
    assert {gone["notebook"], gone["html"]} <= named  # its files are no longer in the index
    if deleted < 2:  # the next record's chain no longer holds
        assert any("hash chain broken" in p.issue for p in problems)
    else:  # nothing follows the last record: index.head anchors the end of the chain
        assert any(p.where == HEAD_NAME for p in problems)


def test_each_append_anchors_the_end_of_the_chain_in_index_head(three_runs):
    last = read_index(three_runs)[-1]

    head = json.loads((three_runs / HEAD_NAME).read_text(encoding="utf-8"))

    assert head == {"runs": 3, "hash": last["hash"]}
    assert not [p for p in three_runs.iterdir() if p.name.startswith(".")]  # no temp files
    mode = (three_runs / INDEX_NAME).stat().st_mode & 0o777
    assert (three_runs / HEAD_NAME).stat().st_mode & 0o777 == mode  # readable where the index is


def test_verify_names_a_torn_or_edited_index_head(three_runs):
    (three_runs / HEAD_NAME).write_text('{"runs": 3, "ha', encoding="utf-8")

    assert [str(p) for p in verify_archive(three_runs)] == [
        f"{HEAD_NAME}: not a valid anchor (edited or torn)"
    ]


def test_verify_catches_the_last_record_deleted_together_with_its_files(three_runs):
    index = three_runs / INDEX_NAME
    lines = index.read_text(encoding="utf-8").splitlines(keepends=True)
    gone = json.loads(lines[-1])
    index.write_text("".join(lines[:-1]), encoding="utf-8")
    (three_runs / gone["notebook"]).unlink()
    (three_runs / gone["html"]).unlink()

    problems = verify_archive(three_runs)

    assert [str(p) for p in problems] == [
        f"{HEAD_NAME}: the index ends after 2 run(s) but {HEAD_NAME} records 3: "
        "the last 1 record(s) were deleted"
    ]


def test_verify_catches_the_last_record_replaced_by_a_forged_one(three_runs):
    index = three_runs / INDEX_NAME
    records = [json.loads(line) for line in index.read_text(encoding="utf-8").splitlines()]
    records[-1]["outcome"] = "rewritten history"
    records[-1]["hash"] = chain_hash(records[-1]["prev_hash"], records[-1])
    index.write_text(
        "".join(archive.canonical_json(r).decode() + "\n" for r in records), encoding="utf-8"
    )

    problems = verify_archive(three_runs)

    assert [p.where for p in problems] == [HEAD_NAME]
    assert "last record" in problems[0].issue


def test_verify_says_plainly_when_index_head_is_missing(three_runs):
    (three_runs / HEAD_NAME).unlink()  # as in an archive written before index.head existed

    problems = verify_archive(three_runs)

    assert [p.where for p in problems] == [HEAD_NAME]
    assert "missing" in problems[0].issue and "cannot be checked" in problems[0].issue
    _archive(three_runs, "run000000004", minutes=3)  # the next run writes it
    assert verify_archive(three_runs) == []


def test_an_empty_archive_needs_no_index_head(tmp_path):
    (tmp_path / "archive").mkdir()

    assert verify_archive(tmp_path / "archive") == []


def test_a_record_appended_behind_index_heads_back_is_named(three_runs):
    head = three_runs / HEAD_NAME
    saved = head.read_bytes()
    append_record(three_runs, {"run_id": "added"})
    head.write_bytes(saved)  # as if the append stopped between the index and index.head

    problems = verify_archive(three_runs)

    assert [p.where for p in problems] == [HEAD_NAME]
    assert "has 4 run(s)" in problems[0].issue and "records 3" in problems[0].issue


def test_verify_catches_an_edited_record(three_runs):
    index = three_runs / INDEX_NAME
    lines = index.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2] = lines[2].replace('"status":"failed"', '"status":"passed"')
    index.write_text("".join(lines), encoding="utf-8")

    problems = verify_archive(three_runs)

    assert [str(p) for p in problems] == [
        f"{INDEX_NAME} line 3 (run run000000003): record changed since it was written"
    ]


def test_a_record_edited_with_its_hash_recomputed_still_breaks_the_chain(three_runs):
    index = three_runs / INDEX_NAME
    records = [json.loads(line) for line in index.read_text(encoding="utf-8").splitlines()]
    records[1]["outcome"] = "rewritten history"
    records[1]["hash"] = chain_hash(records[1]["prev_hash"], records[1])
    index.write_text(
        "".join(archive.canonical_json(r).decode() + "\n" for r in records), encoding="utf-8"
    )

    problems = verify_archive(three_runs)

    assert [p.where for p in problems] == [f"{INDEX_NAME} line 3 (run run000000003)"]


def test_a_torn_last_line_is_flagged_and_the_next_record_still_chains(three_runs):
    index = three_runs / INDEX_NAME
    with open(index, "a", encoding="utf-8") as fh:
        fh.write('{"run_id": "torn", "sta')

    append_record(three_runs, {"run_id": "after-the-tear"})

    assert [str(p) for p in verify_archive(three_runs)] == [
        f"{INDEX_NAME} line 4: not a valid record (edited or torn)"
    ]


def test_concurrent_appends_never_interleave_or_lose_records(tmp_path):
    """Four processes appending 25 records each at once: 100 whole records, one chain."""
    directory = tmp_path / "archive"
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from softbee.runbook.archive import append_record
        for n in range(25):
            record = {"run_id": f"{sys.argv[2]}-{n}", "padding": "x" * 5000}
            append_record(Path(sys.argv[1]), record)
        """
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(directory), f"w{w}"], env=os.environ.copy()
        )
        for w in range(4)
    ]
    assert [w.wait(timeout=HUNG_AFTER_S) for w in workers] == [0, 0, 0, 0]

    records = read_index(directory)
    assert len(records) == 100
    assert len({r["run_id"] for r in records}) == 100
    assert verify_archive(directory) == []


def test_verify_refuses_a_directory_that_does_not_exist(tmp_path):
    with pytest.raises(ArchiveError, match="no archive at"):
        verify_archive(tmp_path / "nowhere")


# -- constant-cost appends ----------------------------------------------------------------------


def test_an_append_reads_index_head_and_the_index_end_never_the_whole_index(tmp_path, monkeypatch):
    directory = tmp_path / "archive"
    for n in range(300):
        append_record(directory, {"run_id": f"r{n:03d}", "padding": "x" * 5000})
    index = directory / INDEX_NAME
    lines = index.read_bytes().split(b"\n")
    lines[0] = b"{damaged" + lines[0][8:]  # an early line no longer parses: a full read would skip it
    index.write_bytes(b"\n".join(lines))
    last = read_index(directory)[-1]
    read = []
    real_pread = os.pread

    def counting_pread(fd: int, length: int, offset: int) -> bytes:
        data = real_pread(fd, length, offset)
        read.append(len(data))
        return data

    def whole_index(_content: bytes) -> tuple[int, str]:
        raise AssertionError("append read the whole index")

    monkeypatch.setattr(chain.os, "pread", counting_pread)
    monkeypatch.setattr(chain, "_chain_end", whole_index)

    record = append_record(directory, {"run_id": "r300"})

    assert sum(read) <= chain.TAIL_BLOCK + 1 < index.stat().st_size // 20
    assert record["prev_hash"] == last["hash"]
    head = json.loads((directory / HEAD_NAME).read_text(encoding="utf-8"))
    assert head == {"runs": 301, "hash": record["hash"]}
    monkeypatch.undo()
    assert [str(p) for p in verify_archive(directory)] == [  # the damage is still found
        f"{INDEX_NAME} line 1: not a valid record (edited or torn)",
        f"{INDEX_NAME} line 2 (run r001): hash chain broken: the record before it was deleted, "
        "changed or moved",
    ]


def test_verify_still_catches_an_early_record_edited_long_before_the_last_append(tmp_path):
    directory = tmp_path / "archive"
    for n in range(50):
        append_record(directory, {"run_id": f"r{n:02d}", "status": "passed"})
    index = directory / INDEX_NAME
    lines = index.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[4] = lines[4].replace('"status":"passed"', '"status":"failed"')
    index.write_text("".join(lines), encoding="utf-8")

    append_record(directory, {"run_id": "r50", "status": "passed"})

    assert [str(p) for p in verify_archive(directory)] == [
        f"{INDEX_NAME} line 5 (run r04): record changed since it was written"
    ]


def test_an_append_after_a_run_stopped_before_index_head_chains_to_the_real_last_record(three_runs):
    head = three_runs / HEAD_NAME
    saved = head.read_bytes()
    fourth = append_record(three_runs, {"run_id": "r4"})
    head.write_bytes(saved)  # as if the run was killed between its record and index.head

    fifth = append_record(three_runs, {"run_id": "r5"})

    assert fifth["prev_hash"] == fourth["hash"]
    assert verify_archive(three_runs) == []


# -- the shared stylesheet ----------------------------------------------------------------------


def test_every_html_links_one_shared_stylesheet_whose_hash_is_in_each_record(three_runs):
    records = read_index(three_runs)
    [stylesheet] = (three_runs / "static").iterdir()

    for record in records:
        page = (three_runs / record["html"]).read_text(encoding="utf-8")
        link = f'<link rel="stylesheet" href="../../../{record["stylesheet"]}">'
        assert link in page and '<style type="text/css">' not in page
        assert (three_runs / record["html"]).parent.joinpath(
            "../../..", record["stylesheet"]
        ).resolve() == stylesheet
        assert record["stylesheet_sha256"] == _sha(stylesheet)
        assert len(page.encode()) < 20_000  # the ~300 KB of CSS is not in it
    assert stylesheet.stat().st_size > 100_000


@pytest.mark.parametrize("damage", ["changed", "removed"])
def test_verify_names_a_changed_or_removed_stylesheet_and_the_runs_that_link_it(three_runs, damage):
    [stylesheet] = (three_runs / "static").iterdir()
    if damage == "changed":
        stylesheet.write_text(stylesheet.read_text(encoding="utf-8") + "body{display:none}")
    else:
        stylesheet.unlink()

    assert [str(p) for p in verify_archive(three_runs)] == [
        f"static/{stylesheet.name}: {damage}"
        + (" since it was archived" if damage == "changed" else "")
        + " (run run000000001, run000000002, run000000003)"
    ]


def test_a_stylesheet_no_record_names_is_reported(three_runs):
    (three_runs / "static" / "notebook-0000000000000000.css").write_text("body{}")

    assert [str(p) for p in verify_archive(three_runs)] == [
        "static/notebook-0000000000000000.css: not in the index: its record was deleted, "
        "or the file was added"
    ]


# -- verify --since -------------------------------------------------------------------------------


def test_verify_since_skips_older_runs_files_but_still_checks_the_whole_chain(three_runs):
    records = read_index(three_runs)
    old_html = three_runs / records[0]["html"]
    old_html.write_text("changed", encoding="utf-8")
    since = T0 + dt.timedelta(minutes=1)

    assert verify_archive(three_runs, since=since) == []  # run 1 started before: its files skipped
    assert [p.where for p in verify_archive(three_runs)] == [records[0]["html"]]

    new_notebook_path = three_runs / records[2]["notebook"]
    new_notebook_path.unlink()
    index = three_runs / INDEX_NAME
    lines = index.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[0] = lines[0].replace('"status":"passed"', '"status":"failed"')
    index.write_text("".join(lines), encoding="utf-8")

    assert [str(p) for p in verify_archive(three_runs, since=since)] == [
        f"{INDEX_NAME} line 1 (run run000000001): record changed since it was written",
        f"{records[2]['notebook']}: removed (run run000000003)",
    ]


def _full_disk_after(monkeypatch: pytest.MonkeyPatch, module: object, name: str,
                     allowed: int) -> None:
    """``module.name`` (os.write, or write_atomic) writes ``allowed`` bytes, then ENOSPC."""
    import errno

    real = getattr(module, name)
    left = [allowed]

    def full(*args: object, **kwargs: object) -> object:
        if name == "write":
            fd, data = args
            if not left[0]:
                raise OSError(errno.ENOSPC, "No space left on device")
            part = bytes(data)[: left[0]]
            left[0] -= len(part)
            return real(fd, part)
        raise OSError(errno.ENOSPC, "No space left on device", str(args[0]))

    monkeypatch.setattr(module, name, full)


def test_a_full_disk_while_appending_leaves_no_torn_line_and_the_archive_verifies(
    three_runs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the fault matrix filled the archive's tmpfs mid-append; a torn index line and two
    files with no record stayed, and ``archive verify`` failed from then on."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(three_runs.parent))  # its spare notebook
    index = three_runs / "index.jsonl"
    before, head = index.read_bytes(), (three_runs / "index.head").read_bytes()
    _full_disk_after(monkeypatch, os, "write", 40)  # 40 bytes of the record's line get through
    with pytest.raises(ArchiveError) as caught:
        _archive(three_runs, "run000000004", minutes=3)
    monkeypatch.undo()
    message = str(caught.value)
    assert "\n" not in message and "could NOT be archived" in message, message
    assert "passed" in message and "No space left on device" in message, message
    assert "index is unchanged" in message and "notebook is kept at" in message, message
    assert list(three_runs.parent.glob("softbee-runbook-unarchived-*run000000004.ipynb"))
    assert index.read_bytes() == before and (three_runs / "index.head").read_bytes() == head
    assert not list(three_runs.rglob("*run000000004*"))
    assert verify_archive(three_runs) == []
    _archive(three_runs, "run000000005", minutes=4)  # space again: the next run archives
    assert verify_archive(three_runs) == []


def test_a_failed_run_that_cannot_be_written_says_how_it_failed_and_keeps_nothing(
    three_runs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from softbee.runbook import archive as package

    monkeypatch.setattr(tempfile, "tempdir", str(three_runs.parent))  # its spare notebook
    real = package.write_atomic
    calls = iter(range(100))

    def html_fails(path: Path, data: bytes, mode: int | None = None) -> None:
        if ".html" in path.name and next(calls) == 0:
            import errno

            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data, mode)

    monkeypatch.setattr(package, "write_atomic", html_fails)
    with pytest.raises(ArchiveError) as caught:
        _archive(three_runs, "run000000004", minutes=3,
                 error={"type": "MigrationFailed", "message": "the database is at revision x; "
                        "run upgrade_downgrade again", "cell": 3, "step": "3. Migrate"})
    message = str(caught.value)
    assert "failed (MigrationFailed: the database is at revision x" in message, message
    assert not list(three_runs.rglob("*run000000004*"))  # the notebook written first: gone
    assert verify_archive(three_runs) == []


def test_a_run_killed_while_waiting_for_the_index_lock_leaves_the_archive_verifying(
    three_runs: Path,
) -> None:
    """Before: its notebook and html were in place before the append waited for the lock, so
    a SIGKILL there left two files no record lists (the fault matrix, SIGKILL while archiving)."""
    import fcntl

    with (three_runs / "index.jsonl").open("ab") as index:
        fcntl.flock(index, fcntl.LOCK_EX)  # another run appending: this one waits
        child = os.fork()
        if child == 0:  # pragma: no cover - the child is killed while it waits
            _archive(three_runs, "run000000004", minutes=3)
            os._exit(0)
        deadline = HUNG_AFTER_S
        import time

        began = time.monotonic()
        while not list(three_runs.rglob("*run000000004*")) and time.monotonic() - began < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        os.kill(child, 9)
        os.waitpid(child, 0)
    assert list(three_runs.rglob("*run000000004*")), "the child never wrote its files"
    assert verify_archive(three_runs) == []


def test_a_run_behind_a_stuck_index_lock_says_it_was_not_archived_and_keeps_its_notebook(
    three_runs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index lock's wait is bounded (archive.files.LOCK_WAIT_S); past it the run is not
    archived, and that must read like a full disk: how the run ended, its notebook kept."""
    import fcntl
    import tempfile

    from softbee.runbook.archive import files
    from softbee.runbook.errors import NotArchived

    monkeypatch.setattr(tempfile, "tempdir", str(three_runs.parent))  # its spare notebook
    monkeypatch.setattr(files, "LOCK_WAIT_S", 0.2)
    index = three_runs / "index.jsonl"
    before = index.read_bytes()
    holder = os.open(index, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)  # a stuck run holds it
    try:
        with pytest.raises(NotArchived) as caught:
            _archive(three_runs, "run000000004", minutes=3)
    finally:
        os.close(holder)
    message = str(caught.value)
    assert "\n" not in message and "passed" in message and "could NOT be archived" in message
    assert "stayed locked" in message and "notebook is kept at" in message, message
    assert index.read_bytes() == before and not list(three_runs.rglob("*run000000004*"))
    assert list(three_runs.parent.glob("softbee-runbook-unarchived-*run000000004.ipynb"))
