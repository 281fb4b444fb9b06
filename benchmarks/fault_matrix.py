"""The fault matrix (issue 21, point 3): faults at moments of a real runbook upgrade, and what is left.

    .venv/bin/python benchmarks/fault_matrix.py [--rows 50000] [--faults a,b] [--moments a,b]
                                               [--port 5434] [--keep]

Makes its own PostgreSQL 15 cluster (``15/faults``, ``--port``, trust from 127.0.0.1; the only
cluster it ever restarts) and its own archive on a small tmpfs mount, both removed at the end.
Builds a database at 5e4a9c1f6b05 with ``--rows`` users and inspections (``bench_online``'s
fill), then for every fault x moment, on a fresh copy, runs ``softbee-runbook run
upgrade_downgrade`` through a local TCP proxy the matrix controls, holds it at the moment,
injects the fault, lets go, and checks what is left:

moments
  ddl        the guarded DDL of 8b7d2f4c9e08 (``CREATE TABLE treatments``), held by a session
             holding ROW EXCLUSIVE on ``hives`` (the revisions before it are committed)
  between    between the phases of 6f5b0d2a7c06: phase 1 committed, the backfill held by the
             pause file before its first batch
  backfill   mid-backfill: a batch's ``UPDATE users`` waiting for one row locked by another
             session half-way through the table (the batches before it committed)
  index      ``CREATE INDEX CONCURRENTLY`` of 7a6c1e3b8d07 (its phase 2 of 2) waiting for an older
             snapshot: a session of the matrix in a REPEATABLE READ transaction on the database
  archiving  the run's notebook and html written (pending names), its index append waiting
             for the index's lock, held by the matrix
faults
  restart-fast, restart-immediate   ``pg_ctlcluster 15 faults restart -m fast|immediate``
  terminate     ``pg_terminate_backend`` of every session of the run on its database
  cut           the proxy resets every connection it carries (new ones get through)
  disk-full     the archive's tmpfs filled to the last byte (emptied once the run ended)
  sigterm, sigkill   to the runner (``softbee-runbook``)

After each: the state is classified with ``bench_online.classify_state`` (a revision of the path
with exactly its schema, or recorded phases of the next revision with a schema between); the
run's last stderr line is judged (:func:`judge_headline`); ``archive verify`` must pass, and a
run that archived nothing must have said so and exited non-zero; a re-run must reach head with
every row kept. Prints a table fault x moment x outcome; exits 1 on any unexplained state,
wrong headline, failed verify or unfinished re-run. Every wait is bounded. Needs root.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import platform
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: the repo
from benchmarks.bench_online import (  # noqa: E402 - the classifier, the fill, the processes
    START_REVISION,
    Server,
    Verdict,
    build_template,
    check_at_head,
    classify_state,
    command_env,
    kill_tagged,
    read_state,
    reference_schemas,
    revision_chain,
    runbook_command,
    table_counts,
    tagged_pids,
    wait_sessions_gone,
)

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CLUSTER = ("15", "faults")
FAULTS = ("restart-fast", "restart-immediate", "terminate", "cut", "disk-full", "sigterm",
          "sigkill")
MOMENTS = ("ddl", "between", "backfill", "index", "archiving")
DDL_REVISION = "8b7d2f4c9e08"
ONLINE_REVISION = "6f5b0d2a7c06"
APP = "fault_matrix"  # application_name of the matrix's own sessions (never terminated)

# Bounds of every wait.
HOLD_S = 180.0  # the run reaching the moment
RUN_END_S = 300.0  # the faulted run ending once let go
RERUN_S = 600.0
CTL_S = 120.0  # pg_ctlcluster create / start / restart / drop
KERNEL_GONE_S = 20.0  # an orphaned kernel after its runner was killed
POLL_S = 0.05


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------------------------
# Pure logic: the run's one line (tests/engine/test_fault_matrix.py)
# --------------------------------------------------------------------------------------------

OURS = "softbee-runbook:"
INTERNALS = ("PendingRollbackError", "ResourceClosedError", "OperationalError", "InterfaceError",
             "InternalError", "DatabaseError", "AdminShutdown", "psycopg2.", "sqlalchemy.",
             "Traceback", "Background on this error", "Can't reconnect until")
NOT_ARCHIVED = re.compile(r"\b(could not be archived|not archived)\b", re.IGNORECASE)
RERUN = re.compile(r"\b(run\b.*\bagain|re-?run)", re.IGNORECASE)
# "rolled back" that does not claim the run undid everything (a phase or revision committed).
QUALIFIED_ROLLBACK = (
    "NOT rolled back", "its open transaction was", "was rolled back, the revisions before it are "
    "committed", "savepoint rolled back")


def headline_of(stderr: str) -> str:
    """The run's one line: the last non-blank line of its stderr (empty when none)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


@dataclass(frozen=True)
class Observed:
    """What the matrix saw of one faulted run."""

    fault: str
    exit_code: int
    stderr: str
    version: str | None  # alembic_version after the run
    phases: bool  # phase rows recorded
    archived: bool  # the run's record is in the index


def judge_headline(seen: Observed, start: str = START_REVISION, head: str | None = None
                   ) -> list[str]:
    """What is wrong with how the run ended and what it said (empty: nothing).

    A run killed by SIGKILL says nothing; it is judged by its state alone. A run that passed
    (exit 0) must have been archived. A failed run's last stderr line must be ours, free of
    driver and SQLAlchemy internals, name the revision the database is at (and its phase when
    one is recorded), never say "rolled back" unqualified once something committed, and
    advise a re-run when the database is not at head. A run not archived says so.
    """
    problems: list[str] = []
    if seen.fault == "sigkill" and seen.exit_code in (-9, 137):
        return problems
    if seen.exit_code == 0:
        if not seen.archived:
            problems.append("exit 0 but nothing archived")
        return problems
    line = headline_of(seen.stderr)
    if not line.startswith(OURS):
        problems.append(f"last stderr line is not ours: {line[:100]!r}")
    internals = [name for name in INTERNALS if name in line]
    if internals:
        problems.append(f"internals in the headline: {', '.join(internals)}")
    committed = seen.phases or (seen.version is not None and seen.version != start)
    if committed:
        rest = line
        for phrase in QUALIFIED_ROLLBACK:
            rest = rest.replace(phrase, "")
        if "rolled back" in rest:
            problems.append("says 'rolled back' although a revision or phase committed")
    at_head = head is not None and seen.version == head and not seen.phases
    if seen.version and not at_head and seen.version not in line:
        problems.append(f"does not name the revision the database is at ({seen.version})")
    if seen.phases and "phase" not in line:
        problems.append("does not name the recorded phase")
    if not at_head and not RERUN.search(line):
        problems.append("does not advise a re-run")
    if not seen.archived and not NOT_ARCHIVED.search(seen.stderr):
        problems.append("not archived, and stderr does not say so")
    return problems


# --------------------------------------------------------------------------------------------
# The proxy: a TCP relay the matrix can cut
# --------------------------------------------------------------------------------------------


class Proxy:
    """Relays 127.0.0.1:``port`` to ``target``; :meth:`cut` resets every connection it carries."""

    def __init__(self, target_port: int, port: int = 0) -> None:
        self.target_port = target_port
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept, name="fault_matrix proxy", daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self.lock:
                self.pairs.append((client, upstream))
            threading.Thread(target=self._relay, args=(client, upstream), daemon=True).start()

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while not self.stopped.is_set():
                ready, _, _ = select.select([a, b], [], [], 0.2)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for sock in (a, b):
                with suppress(OSError):
                    sock.close()
            with self.lock:
                if (a, b) in self.pairs:
                    self.pairs.remove((a, b))

    def connections(self) -> int:
        """How many connections it carries now."""
        with self.lock:
            return len(self.pairs)

    def cut(self) -> int:
        """Reset (RST) both sides of every connection it carries; how many were cut."""
        with self.lock:
            pairs, self.pairs = list(self.pairs), []
        for client, upstream in pairs:
            _reset(client)
            _reset(upstream)
        return len(pairs)

    def stop(self) -> None:
        self.stopped.set()
        self.cut()
        with suppress(OSError):
            self.listener.close()
        self.thread.join(2)


def _reset(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with suppress(OSError):
        sock.close()


# --------------------------------------------------------------------------------------------
# The cluster and the archive's file system
# --------------------------------------------------------------------------------------------


def _as_postgres(*command: str) -> list[str]:
    return list(command) if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *command]


def ctl(*args: str) -> None:
    """``pg_ctlcluster 15 faults ARGS`` (bounded)."""
    subprocess.run(_as_postgres("pg_ctlcluster", *CLUSTER, *args), check=True, timeout=CTL_S,
                   stdout=subprocess.DEVNULL)


@contextmanager
def own_cluster(port: int) -> Iterator[str]:
    """Cluster 15/faults on ``port``, trust from 127.0.0.1, made for the matrix and dropped after."""
    listed = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, timeout=30)
    if any(line.split()[:2] == list(CLUSTER) for line in listed.stdout.splitlines()):
        say("dropping a 15/faults cluster left by an earlier matrix")
        subprocess.run(["pg_dropcluster", *CLUSTER, "--stop"], timeout=CTL_S, check=False)
    subprocess.run(["pg_createcluster", *CLUSTER, "-p", str(port), "--",
                    "--auth-host=trust", "--auth-local=trust"], check=True, timeout=CTL_S,
                   stdout=subprocess.DEVNULL)
    try:
        ctl("start")
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(["pg_dropcluster", *CLUSTER, "--stop"], timeout=CTL_S, check=False)


@contextmanager
def small_filesystem(size: str = "32m") -> Iterator[Path]:
    """A tmpfs of ``size`` on a fresh folder, unmounted and removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="fault-matrix-archive-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)],
                   check=True, timeout=30)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, timeout=30)
        with suppress(OSError):
            folder.rmdir()


def fill_up(folder: Path) -> Path:
    """Write a file in ``folder`` until the file system has no byte left (ENOSPC); its path."""
    filler = folder / "filler.bin"
    chunk = b"\0" * (1 << 20)
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(chunk)
        except OSError:
            pass
        try:  # the last partial megabyte
            while True:
                out.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


# --------------------------------------------------------------------------------------------
# One cell
# --------------------------------------------------------------------------------------------


@dataclass
class Cell:
    fault: str
    moment: str
    exit_code: int | None = None
    headline: str = ""
    verdict: Verdict | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rerun_s: float | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and self.verdict is not None and self.verdict.explained


@dataclass
class Matrix:
    server: Server
    proxy: Proxy
    archive: Path
    scratch: Path
    template: str
    references: dict[str, Any]
    children: dict[str, str]
    head: str
    counts: dict[str, int]
    rows: int
    run_id: str
    keep: bool
    tags: Iterator[int] = field(default_factory=lambda: iter(range(1, 1_000_000)))

    def tag(self) -> str:
        return f"{self.run_id}-{next(self.tags)}"

    def proxied(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.proxy.port}/{database}"


def index_records(archive: Path) -> int:
    index = archive / "index.jsonl"
    try:
        return sum(1 for line in index.read_bytes().splitlines() if line.strip())
    except OSError:
        return 0


def verify_archive(archive: Path) -> tuple[int, str]:
    done = subprocess.run([str(BIN / "softbee-runbook"), "archive", "verify", "--archive-dir",
                           str(archive)], capture_output=True, text=True, timeout=120, cwd=REPO)
    return done.returncode, (done.stdout + done.stderr).strip()


def sessions(m: Matrix, database: str, where: str = "true") -> list[tuple[Any, ...]]:
    return m.server.sql(
        "SELECT pid, application_name, state, wait_event_type, left(query, 80) "
        "FROM pg_stat_activity WHERE datname = :db AND application_name NOT LIKE :ours AND "
        + where, {"db": database, "ours": f"{APP}%"})


class Hold:
    """Holds a run at a moment: ``arm`` before the run starts, ``reached``, ``release``."""

    def __init__(self, m: Matrix, moment: str, database: str, pause_file: Path) -> None:
        self.m, self.moment, self.database, self.pause_file = m, moment, database, pause_file
        self.blocker: Any = None
        self.index: Any = None
        self.notebooks_before: set[Path] = set()

    def arm(self) -> None:
        if self.moment == "ddl":
            self.blocker = self._blocker()
            self.blocker.cursor().execute("LOCK TABLE hives IN ROW EXCLUSIVE MODE")
        elif self.moment == "index":  # a snapshot older than the index build: it waits
            self.blocker = self._blocker()
            self.blocker.set_session(isolation_level="REPEATABLE READ")
            self.blocker.cursor().execute("SELECT 1")
        elif self.moment in ("between", "backfill"):
            self.pause_file.touch()  # backfill: then a row locked half-way, and the file removed
        elif self.moment == "archiving":
            self.notebooks_before = set(self.m.archive.rglob("*.ipynb*"))
            self.index = (self.m.archive / "index.jsonl").open("ab")
            fcntl.flock(self.index, fcntl.LOCK_EX)

    def _blocker(self) -> Any:
        import psycopg2

        return psycopg2.connect(self.m.server.url(self.database),
                                application_name=f"{APP} blocker", connect_timeout=10)

    def reached(self) -> bool:
        if self.moment == "backfill" and self.blocker is None:
            if self._phase_paused():  # phase 1 committed: now a row the backfill will reach
                self.blocker = self._blocker()
                self.blocker.cursor().execute("SELECT id FROM users WHERE id = %s FOR UPDATE",
                                              (self.m.rows // 2,))
                self.pause_file.unlink()
            return False
        if self.moment == "ddl":
            return bool(sessions(self.m, self.database, "wait_event_type = 'Lock' AND query "
                                 "ILIKE '%CREATE TABLE treatments%'"))
        if self.moment == "index":
            return bool(sessions(self.m, self.database,
                                 "wait_event_type = 'Lock' AND query ILIKE "
                                 "'CREATE INDEX CONCURRENTLY%'"))
        if self.moment == "backfill":
            return bool(sessions(self.m, self.database, "wait_event_type = 'Lock' AND query "
                                 "ILIKE 'UPDATE users%'"))
        if self.moment == "between":
            return bool(self.m.server.sql(
                "SELECT 1 FROM pg_database WHERE datname = :db", {"db": self.database})) and \
                self._phase_paused()
        # Its notebook and html written (under pending names until its record is appended).
        return bool(set(self.m.archive.rglob("*.ipynb*")) - self.notebooks_before) and bool(
            set(self.m.archive.rglob(".*.html.pending")))

    def _phase_paused(self) -> bool:
        import psycopg2

        try:
            conn = psycopg2.connect(self.m.server.url(self.database), connect_timeout=5,
                                    application_name=f"{APP} watcher")
        except psycopg2.Error:
            return False
        try:
            conn.autocommit = True
            cursor = conn.cursor()
            cursor.execute("SELECT to_regclass('softbee_runbook_phases')")
            if cursor.fetchone()[0] is None:
                return False
            cursor.execute("SELECT 1 FROM softbee_runbook_phases WHERE revision = %s AND "
                           "phase = 2 AND state = 'paused'", (ONLINE_REVISION,))
            return cursor.fetchone() is not None
        finally:
            conn.close()

    def release(self) -> None:
        if self.blocker is not None:
            with suppress(Exception):
                self.blocker.rollback()
            with suppress(Exception):
                self.blocker.close()
            self.blocker = None
        with suppress(FileNotFoundError):
            self.pause_file.unlink()
        if self.index is not None:
            with suppress(OSError):
                fcntl.flock(self.index, fcntl.LOCK_UN)
            self.index.close()
            self.index = None


def inject(m: Matrix, fault: str, database: str, proc: subprocess.Popen[bytes]) -> str:
    """Inject ``fault``; a few words on what was done."""
    if fault.startswith("restart-"):
        mode = fault.split("-", 1)[1]
        began = time.monotonic()
        ctl("restart", "-m", mode)
        m.server.admin.dispose()  # its pooled sessions died with the server
        return f"restarted -m {mode} in {time.monotonic() - began:.1f} s"
    if fault == "terminate":
        pids = [row[0] for row in sessions(m, database)]
        for pid in pids:
            m.server.sql("SELECT pg_terminate_backend(:pid)", {"pid": pid})
        return f"terminated {len(pids)} session(s)"
    if fault == "cut":
        return f"cut {m.proxy.cut()} connection(s)"
    if fault == "disk-full":
        filler = fill_up(m.archive)
        return f"archive file system filled ({filler.stat().st_size:,} B of filler)"
    signum = signal.SIGTERM if fault == "sigterm" else signal.SIGKILL
    os.kill(proc.pid, signum)
    return f"{signum.name} to the runner"


def run_cell(m: Matrix, fault: str, moment: str) -> Cell:
    cell = Cell(fault, moment)
    database = m.server.create(m.server.name(f"{fault}_{moment}".replace("-", "_")), m.template)
    pause_file = m.scratch / f"{database}.pause"
    tag = m.tag()
    env = command_env(m.proxied(database), tag, m.archive)
    env["SOFTBEE_RUNBOOK_PAUSE_FILE"] = str(pause_file)
    out_log, err_log = m.scratch / f"{database}.out", m.scratch / f"{database}.err"
    records_before = index_records(m.archive)
    hold = Hold(m, moment, database, pause_file)
    filler = m.archive / "filler.bin"
    try:
        hold.arm()
        with out_log.open("wb") as out, err_log.open("wb") as err:
            proc = subprocess.Popen(
                runbook_command("exact", "-p", "lock_timeout_ms", "120000", "-p", "lock_retries",
                                "0"),
                cwd=REPO, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                start_new_session=True)
        deadline = time.monotonic() + HOLD_S
        while not hold.reached():
            if proc.poll() is not None:
                cell.problems.append(f"the run ended (exit {proc.returncode}) before the moment")
                break
            if time.monotonic() > deadline:
                cell.problems.append(f"the moment was not reached within {HOLD_S:.0f} s")
                break
            time.sleep(POLL_S)
        if not cell.problems:
            cell.notes.append(inject(m, fault, database, proc))
            time.sleep(0.5)  # the fault lands before the hold lets go
        hold.release()
        try:
            cell.exit_code = proc.wait(timeout=RUN_END_S)
        except subprocess.TimeoutExpired:
            cell.problems.append(f"HANG: the run had not ended {RUN_END_S:.0f} s after the fault")
            kill_tagged(tag, proc)
            cell.exit_code = proc.wait(timeout=10)
        deadline = time.monotonic() + KERNEL_GONE_S
        while tagged_pids(tag) and time.monotonic() < deadline:
            time.sleep(0.1)
        if tagged_pids(tag):
            cell.notes.append(f"kernel still running {KERNEL_GONE_S:.0f} s after its runner: killed")
            kill_tagged(tag)
    finally:
        hold.release()
        with suppress(FileNotFoundError):
            filler.unlink()
    waited, terminated = wait_sessions_gone(m.server, database)
    if terminated:
        cell.notes.append(f"{len(terminated)} session(s) terminated after the run")
    version, schema, phases, invalid = read_state(m.server, database)
    cell.verdict = classify_state(version, schema, phases, m.references, m.children)
    if invalid:
        cell.notes.append(f"INVALID index(es) left: {', '.join(invalid)}")
    stderr = err_log.read_text(errors="replace")
    cell.headline = headline_of(stderr)
    archived = index_records(m.archive) > records_before
    seen = Observed(fault, cell.exit_code if cell.exit_code is not None else -1, stderr, version,
                    bool(phases), archived)
    cell.problems += judge_headline(seen, START_REVISION, m.head)
    for spare in re.findall(r"its notebook is kept at (\S+\.ipynb)", stderr):
        with suppress(OSError):  # the matrix's own unarchived notebooks: not left in /tmp
            Path(spare).unlink()
    code, text = verify_archive(m.archive)
    if code != 0:
        cell.problems.append(f"archive verify failed: {text[:300]}")
    began = time.monotonic()
    rerun_log = m.scratch / f"{database}.rerun"
    rerun_tag = m.tag()
    with rerun_log.open("wb") as out:
        rerun = subprocess.Popen(runbook_command("exact", "-p", "lock_wait_s", "30"), cwd=REPO,
                                 env=command_env(m.proxied(database), rerun_tag, m.archive),
                                 stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
    try:
        rerun_code = rerun.wait(timeout=RERUN_S)
    except subprocess.TimeoutExpired:
        kill_tagged(rerun_tag, rerun)
        rerun_code = -9
    cell.rerun_s = time.monotonic() - began
    at_head = check_at_head(m.server, database, m.head, m.counts)
    if rerun_code != 0 or at_head:
        tail = "\n".join(rerun_log.read_text(errors="replace").splitlines()[-5:])
        cell.problems.append(f"re-run exit {rerun_code}: {'; '.join(at_head)} {tail}")
    if not m.keep:
        m.server.drop(database)
    return cell


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def outcome_words(cell: Cell) -> str:
    """The table's outcome cell: state, exit, what it said, re-run."""
    state = cell.verdict.state if cell.verdict else "?"
    said = cell.headline.removeprefix("softbee-runbook: error: ")
    said = re.sub(r" \(see /[^)]*\)$", "", said)
    ok = "ok" if cell.ok else "NOT OK: " + "; ".join(cell.problems)
    return (f"{ok} — state: {state}; exit {cell.exit_code}; said: "
            f"{(said[:600] + '…') if len(said) > 600 else said or '(nothing)'}; "
            f"re-run {cell.rerun_s or 0:.0f} s to head")


def print_table(cells: Sequence[Cell]) -> None:
    print("\n| fault | moment | exit | state left (classified) | headline ok | archive | re-run |")
    print("|---|---|---|---|---|---|---|")
    for c in cells:
        head_ok = "yes" if not [p for p in c.problems if "headline" in p or "stderr" in p
                                or "rolled back" in p or "advise" in p or "name" in p] else "NO"
        arch = "NO" if any("archive" in p or "archived" in p for p in c.problems) else "verifies"
        rerun = "NO" if any(p.startswith("re-run") for p in c.problems) else f"{c.rerun_s or 0:.0f} s"
        state = (c.verdict.state if c.verdict else "?").replace("|", "/")
        print(f"| {c.fault} | {c.moment} | {c.exit_code} | "
              f"{'explained' if c.verdict and c.verdict.explained else 'UNEXPLAINED'}: {state} "
              f"| {head_ok} | {arch} | {rerun} |")
    print()
    for c in cells:
        print(f"{c.fault} @ {c.moment}: {outcome_words(c)}")
        for note in c.notes:
            print(f"    {note}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000, help="users and inspections")
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--moments", default=",".join(MOMENTS))
    parser.add_argument("--port", type=int, default=5434, help="port of the matrix's own cluster")
    parser.add_argument("--keep", action="store_true", help="keep the copies (not the cluster)")
    args = parser.parse_args(argv)
    args.faults = [f for f in args.faults.split(",") if f]
    args.moments = [m for m in args.moments.split(",") if m]
    if (set(args.faults) - set(FAULTS) or set(args.moments) - set(MOMENTS) or args.rows < 100
            or args.port in (5432, 5433)):
        parser.error(f"--faults of {', '.join(FAULTS)}; --moments of {', '.join(MOMENTS)}; "
                     "--rows >= 100; --port not 5432/5433 (those clusters are never touched)")
    return args


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("fault_matrix: needs root (its own cluster, a tmpfs mount)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    run_id = uuid.uuid4().hex[:6]
    cells: list[Cell] = []
    began = time.monotonic()
    try:
        with own_cluster(args.port) as base_url, small_filesystem() as archive, \
                tempfile.TemporaryDirectory(prefix="fault-matrix-") as folder:
            server = Server(base_url, run_id)
            proxy = Proxy(args.port)
            scratch = Path(folder)
            try:
                load = os.getloadavg()
                say(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
                    f"PostgreSQL {server.sql('SHOW server_version')[0][0]} (cluster 15/faults, "
                    f"port {args.port}), proxy on {proxy.port}, archive on tmpfs {archive}, load "
                    f"{load[0]:.1f}")
                template = build_template(server, args.rows, scratch, f"{run_id}-0")
                chain, children = revision_chain(START_REVISION)
                references = reference_schemas(server, chain, scratch, f"{run_id}-00")
                m = Matrix(server, proxy, archive, scratch, template, references, children,
                           chain[-1], table_counts(server, template), args.rows, run_id, args.keep)
                for fault in args.faults:
                    for moment in args.moments:
                        say(f"{fault} @ {moment}")
                        cell = run_cell(m, fault, moment)
                        cells.append(cell)
                        say(f"  {outcome_words(cell)}")
                        for note in cell.notes:
                            say(f"    {note}")
            finally:
                for pid in tagged_pids(run_id):  # a run left by an interrupted cell
                    with suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                proxy.stop()
                server.drop_all()
                server.admin.dispose()
                shutil.rmtree(scratch, ignore_errors=True)
    except KeyboardInterrupt:
        say("interrupted: the cluster and the tmpfs are removed")
        return 130
    print_table(cells)
    bad = [c for c in cells if not c.ok]
    print(f"\n{len(cells)} cells, {args.rows:,} users and inspections, "
          f"{time.monotonic() - began:.0f} s; unexplained states "
          f"{sum(1 for c in cells if not (c.verdict and c.verdict.explained))}, cells not ok "
          f"{len(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
