"""The hash-chained index of the archive: append a record, read records, verify the chain.

Each record carries the sha256 of its files (notebook, html and the stylesheet
the html links) and ``hash = sha256(prev_hash + canonical JSON of the record
without hash)``; ``index.head`` anchors the end of the chain, so deleting the
last record (and its files) shows too. :func:`verify_archive` names any file
changed or removed and any record edited or deleted; ``since`` limits the file
checks to newer runs, never the chain check. Appends take an exclusive
``flock`` on the index and rewrite ``index.head`` under it, so concurrent runs
never interleave. An append reads ``index.head`` and the index's last line, not
the whole index: its cost does not grow with the archive.

Imports only :mod:`.render` (where the stylesheet lives) and the errors: the auditors' page
(:mod:`.auditpage`) and the archive's front (:mod:`softbee.runbook.archive`) both read it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from softbee.runbook.archive.files import appended, lock_within, sha256_or_none
from softbee.runbook.archive.files import parse_iso as parse_iso  # re-exported
from softbee.runbook.archive.files import write_atomic as write_atomic
from softbee.runbook.archive.render import STATIC_DIR
from softbee.runbook.errors import ArchiveError

ARCHIVE_DIR_ENV = "RUNBOOK_ARCHIVE_DIR"

INDEX_NAME = "index.jsonl"

HEAD_NAME = "index.head"

GENESIS_HASH = "0" * 64

#: How much of the index's end an append reads at first to find the last record.
TAIL_BLOCK = 64 * 1024

#: The record keys naming a run's files, each with a ``<key>_sha256`` beside it.
FILE_KEYS = ("notebook", "html", "stylesheet")

#: How many files ``verify`` gives a hashing thread at a time.
HASH_BATCH = 256

@dataclass(frozen=True)
class Problem:
    """One thing ``archive verify`` found wrong: where, and what."""

    where: str
    issue: str

    def __str__(self) -> str:
        return f"{self.where}: {self.issue}"


def append_record(directory: Path, record: Mapping[str, Any],
                  before: Callable[[], None] | None = None) -> dict[str, Any]:
    """Chain ``record`` to the last one and append it, then rewrite ``index.head``.

    ``before`` runs under the lock, just before the line is written (a run's files are put
    in place there).

    Both happen under an exclusive lock on the index; ``index.head`` is replaced
    atomically and gets the index's permissions. The end of the chain comes from
    ``index.head`` and the index's last line (constant cost); only an archive
    without ``index.head``, or whose end does not match it, is read whole.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / INDEX_NAME, "a+b") as index:
        lock_within(index.fileno(), str(directory / INDEX_NAME))
        try:
            runs, last_hash, torn = _chain_end_from_head(directory, index.fileno())
            chained = {k: v for k, v in record.items() if k not in ("prev_hash", "hash")}
            chained["prev_hash"] = last_hash
            chained["hash"] = chain_hash(chained["prev_hash"], chained)
            line = canonical_json(chained) + b"\n"
            if torn:  # a torn last line stays on its own
                line = b"\n" + line
            if before is not None:
                before()
            with appended(index.fileno(), line):  # a full disk: no torn line, old head
                write_atomic(
                    directory / HEAD_NAME,
                    canonical_json({"runs": runs + 1, "hash": chained["hash"]}) + b"\n",
                    mode=os.fstat(index.fileno()).st_mode & 0o777,
                )
        finally:
            fcntl.flock(index, fcntl.LOCK_UN)
    return chained


def canonical_json(record: Mapping[str, Any]) -> bytes:
    """The one byte form a record is hashed and stored in: sorted keys, no spaces, UTF-8."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(prev_hash: str, record: Mapping[str, Any]) -> str:
    """sha256 of the previous record's hash + this record's canonical JSON without its hash."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_json(body)).hexdigest()


def read_index(directory: Path) -> list[dict[str, Any]]:
    """Every readable record of the index, oldest first (unreadable lines are skipped)."""
    index = directory / INDEX_NAME
    content = index.read_bytes() if index.is_file() else b""
    return [record for _, record in _parse_lines(content) if isinstance(record, dict)]


def unreadable_lines(directory: Path) -> list[int]:
    """Line numbers of the index that are not a JSON record (damage ``verify`` will name)."""
    index = directory / INDEX_NAME
    content = index.read_bytes() if index.is_file() else b""
    return [lineno for lineno, record in _parse_lines(content) if not isinstance(record, dict)]


def verify_archive(directory: Path, since: dt.datetime | None = None) -> list[Problem]:
    """Check the whole hash chain and every run's files (or those of runs since ``since``)."""
    if not directory.is_dir():
        raise ArchiveError(
            f"no archive at {str(directory)!r}: pass --archive-dir DIR or set {ARCHIVE_DIR_ENV}"
        )
    from concurrent.futures import Future, ThreadPoolExecutor

    content, head = _read_chain(directory)
    problems: list[Problem] = []
    referenced: set[str] = set()
    to_check: dict[str, tuple[str, list[str]]] = {}  # path -> (expected sha256, run ids)
    expected_prev = GENESIS_HASH
    runs = damaged = 0
    # Files are hashed on other threads while this one walks the chain (hashlib and file
    # reads release the GIL), in batches, as the records name them.
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        hashing: list[Future[dict[str, str | None]]] = []
        batch: list[str] = []
        for lineno, raw, record in _parse_raw_lines(content):
            where = f"{INDEX_NAME} line {lineno}"
            if not isinstance(record, dict) or not isinstance(record.get("hash"), str):
                problems.append(Problem(where, "not a valid record (edited or torn)"))
                damaged += 1
                continue
            runs += 1
            where += f" (run {record.get('run_id')})"
            prev = record.get("prev_hash")
            intact = (_line_matches_hash(raw, record)
                      or chain_hash(str(prev), record) == record["hash"])
            if not intact:
                problems.append(Problem(where, "record changed since it was written"))
            elif prev != expected_prev:
                problems.append(Problem(
                    where, "hash chain broken: the record before it was deleted, changed or moved"
                ))
            expected_prev = record["hash"]
            check = since is None or _started_since(record, since)
            for key in FILE_KEYS:
                relative = record.get(key)
                if not isinstance(relative, str):
                    continue
                referenced.add(relative)
                if not check:
                    continue
                expected = str(record.get(f"{key}_sha256"))
                if relative not in to_check:
                    batch.append(relative)
                seen = to_check.setdefault(relative, (expected, []))
                seen[1].append(str(record.get("run_id")))
                if seen[0] != expected:  # two records disagree on one shared file
                    to_check[relative] = ("", seen[1])
            if len(batch) >= HASH_BATCH:
                hashing.append(pool.submit(_hash_files, directory, batch))
                batch = []
        hashing.append(pool.submit(_hash_files, directory, batch))
        digests = {path: digest for done in hashing for path, digest in done.result().items()}
    problems.extend(_head_problems(head, runs, expected_prev, damaged))
    problems.extend(_file_problems(to_check, digests))
    for relative in _archived_files(directory, since):
        if relative not in referenced:
            problems.append(
                Problem(relative, "not in the index: its record was deleted, or the file was added")
            )
    return problems


def head_runs(directory: Path) -> int | None:
    """How many runs ``index.head`` says the index holds (None without a readable head)."""
    anchor = _read_head(directory)
    return anchor[0] if anchor else None


def _hash_files(directory: Path, paths: list[str]) -> dict[str, str | None]:
    return {relative: sha256_or_none(directory / relative) for relative in paths}


def _file_problems(
    expected: Mapping[str, tuple[str, list[str]]], digests: Mapping[str, str | None]
) -> list[Problem]:
    """Each file whose digest is not the one its records expect: removed or changed."""
    problems = []
    for relative, (sha, run_ids) in expected.items():
        more = f" and {len(run_ids) - 3} more" if len(run_ids) > 3 else ""
        runs = ", ".join(run_ids[:3]) + more
        if digests[relative] is None:
            problems.append(Problem(relative, f"removed (run {runs})"))
        elif digests[relative] != sha:
            problems.append(Problem(relative, f"changed since it was archived (run {runs})"))
    return problems


def _parse_lines(content: bytes) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed JSON or None)`` for every non-blank line of the index."""
    for lineno, _, record in _parse_raw_lines(content):
        yield lineno, record


def _parse_raw_lines(content: bytes) -> Iterator[tuple[int, bytes, Any]]:
    """``(line number, the line, parsed JSON or None)`` for every non-blank line of the index."""
    for lineno, raw in enumerate(content.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            yield lineno, raw, json.loads(raw)
        except ValueError:
            yield lineno, raw, None


def _line_matches_hash(raw: bytes, record: Mapping[str, Any]) -> bool:
    """Whether the line, as written, hashes to its ``hash`` (no re-serialising: fast).

    Every line is the canonical JSON of its record, so the line without its
    ``"hash"`` member is the canonical JSON :func:`chain_hash` hashed. A line that
    fails here (reformatted, or edited) is checked the slow way by the caller.
    """
    member = b'"hash":"' + str(record["hash"]).encode("ascii", "replace") + b'"'
    if raw.startswith(b"{" + member + b","):
        body = b"{" + raw[len(member) + 2 :]
    elif b"," + member in raw:
        body = raw.replace(b"," + member, b"", 1)
    else:
        return False
    prev = str(record.get("prev_hash")).encode("ascii", "replace")
    return hashlib.sha256(prev + body).hexdigest() == record["hash"]


def _chain_end(content: bytes) -> tuple[int, str]:
    """How many records the index holds (lines with a hash) and the last one's hash."""
    runs, last = 0, GENESIS_HASH
    for _, record in _parse_lines(content):
        if isinstance(record, dict) and isinstance(record.get("hash"), str):
            runs, last = runs + 1, record["hash"]
    return runs, last


def _chain_end_from_head(directory: Path, fd: int) -> tuple[int, str, bool]:
    """Runs, last hash and whether the last line is torn, from ``index.head`` and the index's end.

    The head and the last record agree after every completed append; a run stopped
    between writing its record and ``index.head`` leaves a last record chained to the
    head's hash, which is taken as the end. Anything else (no head yet, an edited end)
    falls back to reading the whole index, as appends did before ``index.head``.
    """
    size = os.fstat(fd).st_size
    if size == 0:
        return 0, GENESIS_HASH, False
    torn = os.pread(fd, 1, size - 1) != b"\n"
    anchor = _read_head(directory)
    last = _last_record(fd, size)
    if anchor is not None and last is not None:
        runs, head_hash = anchor
        if last["hash"] == head_hash:
            return runs, head_hash, torn
        if last.get("prev_hash") == head_hash:
            return runs + 1, last["hash"], torn
    runs, last_hash = _chain_end(os.pread(fd, size, 0))
    return runs, last_hash, torn


def _last_record(fd: int, size: int) -> dict[str, Any] | None:
    """The last complete, readable record of the index, reading only its end."""
    block = TAIL_BLOCK
    while True:
        start = max(0, size - block)
        lines = os.pread(fd, size - start, start).split(b"\n")
        if start > 0:
            lines = lines[1:]  # the first piece may be the end of a longer line
        for raw in reversed(lines):
            try:
                record = json.loads(raw) if raw.strip() else None
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("hash"), str):
                return record
        if start == 0:
            return None
        block *= 4


def _read_head(directory: Path) -> tuple[int, str] | None:
    """``index.head``'s (runs, hash), or None when it is missing or unreadable."""
    try:
        anchor = json.loads((directory / HEAD_NAME).read_bytes())
        runs, last_hash = anchor["runs"], anchor["hash"]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if not isinstance(runs, int) or not isinstance(last_hash, str):
        return None
    return runs, last_hash


def _started_since(record: Mapping[str, Any], since: dt.datetime) -> bool:
    started = parse_iso(record.get("started_at"))
    return started is None or started >= since  # an unreadable date is checked, not skipped


def _read_chain(directory: Path) -> tuple[bytes, bytes | None]:
    """The index and ``index.head`` (None when absent), read together under a shared lock."""
    head = directory / HEAD_NAME
    index = directory / INDEX_NAME
    if not index.is_file():
        return b"", head.read_bytes() if head.is_file() else None
    with open(index, "rb") as fh:
        lock_within(fh.fileno(), str(index), shared=True)  # an append in progress finishes first
        try:
            return fh.read(), head.read_bytes() if head.is_file() else None
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _head_problems(
    head: bytes | None, runs: int, last_hash: str, damaged: int = 0
) -> list[Problem]:
    """Whether the end of the index is where ``index.head`` says the last append left it."""
    if head is None:
        if runs == 0:
            return []
        return [
            Problem(
                HEAD_NAME,
                "missing, so the end of the hash chain cannot be checked (deleting the last "
                "run would go unnoticed). Archives written before index.head existed have "
                "none: the next `softbee-runbook run` writes it; verify again after that run",
            )
        ]
    try:
        anchor = json.loads(head)
        expected_runs, expected_hash = anchor["runs"], anchor["hash"]
    except (ValueError, TypeError, KeyError):
        expected_runs = expected_hash = None
    if not isinstance(expected_runs, int) or not isinstance(expected_hash, str):
        return [Problem(HEAD_NAME, "not a valid anchor (edited or torn)")]
    if runs < expected_runs and runs + damaged < expected_runs:  # damaged lines are named already
        return [
            Problem(
                HEAD_NAME,
                f"the index ends after {runs} run(s) but {HEAD_NAME} records {expected_runs}: "
                f"the last {expected_runs - runs} record(s) were deleted",
            )
        ]
    if runs > expected_runs:
        return [
            Problem(
                HEAD_NAME,
                f"the index has {runs} run(s) but {HEAD_NAME} records {expected_runs}: records "
                "were added by hand, or a run stopped between writing its record and "
                f"{HEAD_NAME}",
            )
        ]
    if last_hash != expected_hash:
        return [
            Problem(
                HEAD_NAME,
                f"the last record's hash is not the one {HEAD_NAME} records: the last record "
                "was replaced",
            )
        ]
    return []


def _archived_files(directory: Path, since: dt.datetime | None = None) -> Iterator[str]:
    """Relative paths of run files (in day folders from ``since``'s date on) and stylesheets."""
    first_day = f"{since.astimezone(dt.UTC):%Y/%m/%d}" if since is not None else ""
    for day in sorted(directory.glob("[0-9][0-9][0-9][0-9]/[0-9][0-9]/[0-9][0-9]")):
        prefix = day.relative_to(directory).as_posix()
        if prefix < first_day:
            continue
        with os.scandir(day) as entries:
            names = sorted(e.name for e in entries
                           if e.name.endswith((".ipynb", ".html")) and e.is_file())
        yield from (f"{prefix}/{name}" for name in names)
    static = directory / STATIC_DIR
    if static.is_dir():
        with os.scandir(static) as entries:
            yield from sorted(f"{STATIC_DIR}/{e.name}" for e in entries
                              if e.name.endswith(".css") and e.is_file())
