"""The auditors' pages: ``<archive>/index.html`` and ``<archive>/pages/``, kept up to date per run.

Layout (all derived from ``index.jsonl``, outside the hash chain)::

    <archive>/index.html            totals, the latest runs, links to the pages
    <archive>/pages/page-0001.html  the index's runs 1..PAGE_SIZE, newest first; then 0002...
    <archive>/pages/index.html      one row per full page, with its counts by runbook and status
    <archive>/pages/pages.jsonl     those rows' data (appended to when a page fills up)
    <archive>/pages/state.json      how far the index has been read, and the running totals

After a run (:func:`write_index_page`) only what changed is read and written: the
index from the start of its newest page (``state.json`` keeps that byte offset, never
the whole file), the newest page, ``index.html`` and ``state.json``; when a page fills
up, it gains its "newer page" link and becomes immutable, and the list of pages is
rewritten. So the cost of a run's update does not grow with the archive.
``softbee-runbook archive html`` (``full=True``) reads the whole index and writes every
file again through the same code: the bytes are the same as the per-run path's. An
update that finds ``state.json`` missing, or the index's end not where it left it (the
index was rewritten, truncated or replaced), rebuilds in full.

The page is derived data: ``archive verify`` remains the check, and ``archive html`` the
repair (an older page deleted by hand comes back only through it). HTML:
:mod:`~softbee.runbook.archive.pagehtml`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from softbee.runbook.archive.chain import (
    ARCHIVE_DIR_ENV,
    INDEX_NAME,
    canonical_json,
    parse_iso,
    write_atomic,
)
from softbee.runbook.archive.files import lock_within
from softbee.runbook.archive.pagehtml import (
    COLUMNS,
    database_label,
    format_duration,
    newest_first,
    page_file,
    relative_href,
    render_front,
    render_page,
    render_page_list,
    utc_text,
)
from softbee.runbook.errors import ArchiveError

__all__ = [
    "COLUMNS", "LATEST", "PAGES_DIR", "PAGE_NAME", "PAGE_SIZE", "IndexPage", "database_label",
    "format_duration", "newest_first", "relative_href", "render_index_page", "write_index_page",
]

PAGE_NAME = "index.html"
PAGES_DIR = "pages"
STATE_NAME = "state.json"
SUMMARIES_NAME = "pages.jsonl"
#: Runs per page file: the newest page is rewritten after each run, older ones never.
PAGE_SIZE = 500
#: Runs on ``index.html``: the last ones appended to the index.
LATEST = 100
_BLOCK = 1 << 20
_STATE_VERSION = 1


@dataclass(frozen=True)
class IndexPage:
    """What an update did: the front page, the runs (and failed runs), the files written."""

    path: Path
    runs: int
    failed: int
    pages: int = 0
    written: tuple[Path, ...] = ()
    bytes_read: int = 0  # of the index
    rebuilt: bool = False


@dataclass
class _State:
    """How far the index has been read (bytes, lines) and the totals up to there."""

    page_size: int
    offset: int = 0
    lines: int = 0
    tail_start: int = 0
    tail_sha: str = ""
    records: int = 0
    failed: int = 0
    runbooks: dict[str, list[int]] = field(default_factory=dict)  # name -> [runs, failed]
    starts: list[int] = field(default_factory=lambda: [0, 0])  # previous and newest page
    recent: list[int] = field(default_factory=list)  # where the last LATEST records start
    unreadable: list[int] = field(default_factory=list)

    @property
    def pages(self) -> int:
        return -(-self.records // self.page_size)


def write_index_page(directory: Path, *, full: bool = False,
                     page_size: int = PAGE_SIZE) -> IndexPage:
    """Bring the auditors' pages up to the index's end (``full``: rebuild every page)."""
    if not directory.is_dir():
        raise ArchiveError(
            f"no archive at {str(directory)!r}: pass --archive-dir DIR or set {ARCHIVE_DIR_ENV}"
        )
    (directory / PAGES_DIR).mkdir(exist_ok=True)
    fd = os.open(directory, os.O_RDONLY)
    try:
        # Two runs finishing together: the later writer reads the index after both appends.
        lock_within(fd, str(directory))
        return _Update(directory, page_size, full).run()
    finally:
        os.close(fd)  # releases the lock


def render_index_page(records: list[Mapping[str, Any]]) -> str:
    """The front page's HTML for ``records`` (index order) held in memory, latest run first."""
    failed = sum(1 for record in records if record.get("status") == "failed")
    runbooks: dict[str, list[int]] = {}
    for record in records:
        _count(runbooks, record)
    return render_front(records[-LATEST:], runs=len(records), failed=failed, runbooks=runbooks,
                        pages=-(-len(records) // PAGE_SIZE), page_size=PAGE_SIZE)


class _Update:
    """One update of the pages: read the index from the newest page's start, write what changed."""

    def __init__(self, directory: Path, page_size: int, full: bool) -> None:
        self.directory = directory
        self.pages_dir = directory / PAGES_DIR
        self.mode = _page_mode(directory)
        self.written: list[Path] = []
        self.bytes_read = 0
        self.state = None if full else _read_state(self.pages_dir / STATE_NAME, page_size)
        self.full = self.state is None
        self.page_size = page_size

    def run(self) -> IndexPage:
        """Read what is new, write the pages it changed, the front page and the state."""
        index = self.directory / INDEX_NAME
        with open(index, "rb") if index.is_file() else open(os.devnull, "rb") as fh:
            fd = fh.fileno()
            size = os.fstat(fd).st_size
            if self.state is not None and not self._state_matches(fd, size):
                self.state, self.full = None, True
            state = self.state or _State(self.page_size)
            end = self._complete_end(fd, size, state.offset)
            if end > state.offset or self.full:
                self._consume(fd, state, end)
        return IndexPage(path=self.directory / PAGE_NAME, runs=state.records, failed=state.failed,
                         pages=state.pages, written=tuple(self.written),
                         bytes_read=self.bytes_read, rebuilt=self.full)

    def _state_matches(self, fd: int, size: int) -> bool:
        """Whether the index still ends, at the state's offset, with the line it last read."""
        state = self.state
        assert state is not None
        if state.offset > size:
            return False
        if state.offset == 0:
            return True
        tail = self._read(fd, state.tail_start, state.offset - state.tail_start)
        return hashlib.sha256(tail).hexdigest() == state.tail_sha

    def _complete_end(self, fd: int, size: int, offset: int) -> int:
        """The end of the last complete line (a line being appended is left for next time)."""
        end = size
        while end > offset:
            start = max(offset, end - _BLOCK)
            cut = self._read(fd, start, end - start).rfind(b"\n")
            if cut >= 0:
                return start + cut + 1
            end = start
        return offset

    def _consume(self, fd: int, state: _State, end: int) -> None:
        size = self.page_size
        old_pages = state.pages
        page = max(old_pages, 1)
        position = (page - 1) * size
        current: list[dict[str, Any]] = []
        closed: list[dict[str, Any]] = []
        for line_start, raw in self._lines(fd, state.starts[1], end):
            new = line_start >= state.offset
            if new:
                state.lines += 1
                state.tail_start = line_start
            if not raw.strip():
                continue
            record = _parse(raw)
            if record is None:
                if new:
                    state.unreadable.append(state.lines)
                continue
            if position // size + 1 != page:  # the page is full and a newer one begins
                self._write_page(page, current, newer=True)
                closed.append(_summary(page, current, position - len(current) + 1))
                current, page = [], page + 1
            if new:
                if position % size == 0:
                    state.starts = [state.starts[1], line_start]
                state.records += 1
                state.recent = [*state.recent[1 - LATEST:], line_start]
                state.failed += record.get("status") == "failed"
                _count(state.runbooks, record)
            current.append(record)
            position += 1
        state.offset = end
        state.tail_sha = hashlib.sha256(
            self._read(fd, state.tail_start, end - state.tail_start)).hexdigest()
        if current:
            self._write_page(page, current, newer=False)
        older: list[dict[str, Any]] = []
        if len(current) < LATEST and state.recent and state.recent[0] < state.starts[1]:
            older = [r for _, raw in self._lines(fd, state.recent[0], state.starts[1])
                     if (r := _parse(raw)) is not None]  # the end of the page before, for the front
        if closed or self.full or state.pages != old_pages:
            self._write_page_list(closed, state.pages)
        latest = (older + current)[-LATEST:]
        self._write(self.directory / PAGE_NAME, render_front(
            latest, runs=state.records, failed=state.failed, runbooks=state.runbooks,
            pages=state.pages, page_size=size, unreadable=state.unreadable))
        if self.full:
            self._remove_pages_after(state.pages)
        saved = {**vars(state), "version": _STATE_VERSION}
        self._write(self.pages_dir / STATE_NAME, canonical_json(saved) + b"\n")

    def _write_page(self, number: int, records: list[dict[str, Any]], *, newer: bool) -> None:
        first = (number - 1) * self.page_size + 1
        self._write(self.pages_dir / page_file(number),
                    render_page(number, records, first=first, newer=newer))

    def _write_page_list(self, closed: list[dict[str, Any]], newest: int) -> None:
        """Add the pages that filled up to ``pages.jsonl``; rewrite the list of pages."""
        path = self.pages_dir / SUMMARIES_NAME
        kept: list[dict[str, Any]] = []
        if not self.full and path.is_file():
            below = closed[0]["page"] if closed else newest
            kept = [s for line in path.read_bytes().splitlines()  # edited lines: left out
                    if (s := _summary_of(line)) is not None and s["page"] < below]
        summaries = kept + closed
        self._write(path, b"".join(canonical_json(s) + b"\n" for s in summaries))
        self._write(self.pages_dir / PAGE_NAME,
                    render_page_list(summaries, newest=newest, page_size=self.page_size))

    def _remove_pages_after(self, last: int) -> None:
        """Pages of a longer index than this one (rewritten or truncated): not the runs' pages."""
        for path in self.pages_dir.glob("page-*.html"):
            number = path.stem.removeprefix("page-")
            if number.isdigit() and int(number) > last:
                path.unlink()

    def _write(self, path: Path, content: str | bytes) -> None:
        data = content.encode("utf-8") if isinstance(content, str) else content
        write_atomic(path, data, self.mode)
        self.written.append(path)

    def _read(self, fd: int, start: int, length: int) -> bytes:
        data = os.pread(fd, length, start)
        self.bytes_read += len(data)
        return data

    def _lines(self, fd: int, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """``(offset, line)`` for each line from ``start`` (a line's start) to ``end``."""
        carry, at = b"", start
        while at < end:
            block = carry + self._read(fd, at, min(_BLOCK, end - at))
            base = at - len(carry)
            at += len(block) - len(carry)
            *lines, carry = block.split(b"\n")
            for line in lines:
                yield base, line
                base += len(line) + 1


def _summary(page: int, records: list[dict[str, Any]], first: int) -> dict[str, Any]:
    """A full page's row in the list of pages: where it starts, when, its counts."""
    counts: dict[str, dict[str, int]] = {}
    for record in records:
        by_status = counts.setdefault(_name(record), {})
        status = str(record.get("status"))
        by_status[status] = by_status.get(status, 0) + 1
    times = sorted(t for r in records if (t := parse_iso(r.get("started_at"))))
    return {"page": page, "first": first, "runs": len(records), "counts": counts,
            "from": utc_text(times[0].isoformat()) if times else "",
            "to": utc_text(times[-1].isoformat()) if times else ""}


def _summary_of(line: bytes) -> dict[str, Any] | None:
    """A line of ``pages.jsonl``, or None unless it has a page's fields (hand-edited)."""
    summary = _parse(line)
    counts = summary.get("counts") if summary is not None else None
    if not isinstance(counts, dict) or not all(
            isinstance(by_status, dict) and all(isinstance(n, int) for n in by_status.values())
            for by_status in counts.values()):
        return None
    if not all(isinstance(summary.get(key), int) for key in ("page", "first", "runs")):
        return None
    if not all(isinstance(summary.get(key), str) for key in ("from", "to")):
        return None
    return summary


def _count(runbooks: dict[str, list[int]], record: Mapping[str, Any]) -> None:
    counts = runbooks.setdefault(_name(record), [0, 0])
    counts[0] += 1
    counts[1] += record.get("status") == "failed"


def _name(record: Mapping[str, Any]) -> str:
    runbook = record.get("runbook")
    return "" if runbook is None else str(runbook)


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _read_state(path: Path, page_size: int) -> _State | None:
    """The saved state, or None when missing, unreadable or for another page size."""
    try:
        saved = json.loads(path.read_bytes())
        state = _State(**{k: v for k, v in saved.items() if k != "version"})
    except (OSError, ValueError, TypeError):
        return None
    if saved.get("version") != _STATE_VERSION or state.page_size != page_size:
        return None
    numbers = [state.offset, state.lines, state.tail_start, state.records, state.failed,
               *state.starts, *state.recent, *state.unreadable]
    shaped = (isinstance(state.runbooks, dict) and len(state.starts) == 2
              and all(isinstance(v, list) and len(v) == 2 for v in state.runbooks.values()))
    if not shaped or not all(isinstance(n, int) and n >= 0 for n in numbers):
        return None  # edited by hand: rebuilt from the index
    return state


def _page_mode(directory: Path) -> int:
    """The index's permissions (who may read the runs may read the page), else 0644."""
    try:
        return os.stat(directory / INDEX_NAME).st_mode & 0o777
    except OSError:
        return 0o644
