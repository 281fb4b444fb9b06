"""Archive locks are waited for within a bound (archive/files.py ``lock_within``)."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

import pytest

from softbee.runbook.archive import files
from softbee.runbook.archive.chain import INDEX_NAME, append_record
from softbee.runbook.errors import ArchiveError


def _hold(path: Path) -> int:
    """Another open file description holding ``path``'s exclusive lock (as another process would)."""
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_a_lock_held_past_the_bound_is_one_archive_error(tmp_path: Path) -> None:
    target = tmp_path / "index.jsonl"
    target.write_bytes(b"")
    holder = _hold(target)
    try:
        with open(target, "rb") as fh:
            started = time.monotonic()
            with pytest.raises(ArchiveError) as caught:
                files.lock_within(fh.fileno(), str(target), wait_s=0.3)
            waited = time.monotonic() - started
    finally:
        os.close(holder)
    assert 0.3 <= waited < 5  # the bound, not forever
    message = str(caught.value)
    assert "\n" not in message and "stayed locked" in message and str(target) in message


def test_a_lock_released_within_the_bound_is_taken(tmp_path: Path) -> None:
    target = tmp_path / "index.jsonl"
    target.write_bytes(b"")
    holder = _hold(target)
    threading.Timer(0.2, os.close, args=(holder,)).start()
    with open(target, "rb") as fh:
        files.lock_within(fh.fileno(), str(target), wait_s=10)
        with pytest.raises(BlockingIOError):  # we hold it now
            other = os.open(target, os.O_RDONLY)
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            finally:
                os.close(other)


def test_an_append_behind_a_stuck_holder_fails_and_changes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    append_record(tmp_path, {"runbook": "first"})
    index = tmp_path / INDEX_NAME
    before = index.read_bytes()
    monkeypatch.setattr(files, "LOCK_WAIT_S", 0.2)
    holder = _hold(index)
    try:
        with pytest.raises(ArchiveError, match="stayed locked"):
            append_record(tmp_path, {"runbook": "second"})
    finally:
        os.close(holder)
    assert index.read_bytes() == before
