"""The archive's files: written whole or not at all, hashed, and its records' times read."""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from softbee.runbook.errors import ArchiveError

#: How long an archive lock is waited for (a run's append, a page update, a verify's read).
#: Appends hold it for milliseconds and page updates for seconds; a holder past this is stuck.
LOCK_WAIT_S = 300.0


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write ``path`` whole or not at all (temp file, fsync, rename); ``mode`` else 0600."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if mode is not None:  # mkstemp makes 0600 files
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def appended(fd: int, data: bytes) -> Iterator[None]:
    """Append ``data`` to ``fd`` (unbuffered, fsynced), then run the block; when either fails
    (a full disk), the file is cut back to its size before: no torn line is left."""
    size = os.fstat(fd).st_size
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        yield
    except BaseException:
        os.ftruncate(fd, size)
        os.fsync(fd)
        raise


def sha256_or_none(path: Path) -> str | None:
    """The sha256 of ``path`` in hex, or None when the file is not there."""
    try:
        return sha256_of(path)
    except FileNotFoundError:
        return None


def sha256_of(path: Path) -> str:
    """The sha256 of ``path`` in hex, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_iso(text: Any) -> dt.datetime | None:
    """An ISO time from a record (naive means UTC), or None when it is not one."""
    if not isinstance(text, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def lock_within(fd: int, what: str, *, shared: bool = False, wait_s: float | None = None) -> None:
    """``flock`` ``fd`` (exclusive, or ``shared``), waiting at most ``wait_s`` (:data:`LOCK_WAIT_S`).

    Past the bound: :class:`ArchiveError`, one line naming ``what`` and how to find the holder.
    """
    bound = LOCK_WAIT_S if wait_s is None else wait_s
    mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
    deadline = time.monotonic() + bound
    pause = 0.01
    while True:
        try:
            fcntl.flock(fd, mode)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise ArchiveError(
                    f"{what} stayed locked by another process for {bound:.0f} s: a run or an "
                    f"`archive html` may be stuck; find it with `fuser -v {what}` and stop it, "
                    "then run again") from None
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 0.2)
