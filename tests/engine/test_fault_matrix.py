"""The pure logic of benchmarks/fault_matrix.py: the run's one line judged, and the proxy that cuts.

The matrix itself (its own cluster restarted, a tmpfs filled) is ``make fault-matrix``; these
prove the checks it applies could fail.
"""

from __future__ import annotations

import socket
import threading

import pytest

from benchmarks.fault_matrix import Observed, Proxy, headline_of, judge_headline

START, MIDDLE, HEAD = "5e4a9c1f6b05", "7a6c1e3b8d07", "8b7d2f4c9e08"
GOOD_PHASE = (
    "softbee-runbook: runbook 'upgrade_downgrade' failed at step '3. Migrate': MigrationFailed: "
    "revision 6f5b0d2a7c06 (...): the connection to the database was lost (server closed the "
    "connection unexpectedly); 6f5b0d2a7c06 is NOT rolled back as a whole: its open transaction "
    f"was, what its phases committed stays; the database is at revision {START}, revision "
    "6f5b0d2a7c06 (upgrade): phase 2 of 3 (backfill users.full_name) paused, 0 / 50,000 rows; a "
    "re-run resumes there: fix the cause and run upgrade_downgrade again (see /tmp/x.html)")
BAD_ROLLED_BACK = (
    "softbee-runbook: runbook 'upgrade_downgrade' failed at step '3. Migrate': MigrationFailed: "
    "upgrade failed: OperationalError: connection to server at \"127.0.0.1\" failed: FATAL: the "
    f"database system is shutting down; rolled back, database still at {START}: fix the script, "
    "or fix the database by hand and run recover_stamp (see /tmp/x.html)")


def seen(stderr: str, version: str | None = START, phases: bool = False, code: int = 1,
         fault: str = "restart-fast", archived: bool = True) -> Observed:
    return Observed(fault, code, stderr, version, phases, archived)


def test_the_headline_is_the_last_line_of_stderr() -> None:
    assert headline_of("progress\n\nsoftbee-runbook: error: x\n\n") == "softbee-runbook: error: x"
    assert headline_of("") == ""


def test_a_line_naming_the_phase_and_advising_a_rerun_passes() -> None:
    assert judge_headline(seen(f"noise\n{GOOD_PHASE}\n", phases=True), START, HEAD) == []


def test_rolled_back_after_a_committed_revision_is_caught_with_the_internals() -> None:
    problems = judge_headline(seen(BAD_ROLLED_BACK, version=MIDDLE), START, HEAD)
    assert any("rolled back" in p for p in problems), problems
    assert any("OperationalError" in p for p in problems), problems
    assert any(MIDDLE in p for p in problems), problems
    assert any("re-run" in p for p in problems), problems


def test_sqlalchemy_internals_and_foreign_lines_are_caught() -> None:
    line = ("sqlalchemy.exc.PendingRollbackError: Can't reconnect until invalid transaction is "
            "rolled back")
    problems = judge_headline(seen(line), START, HEAD)
    assert any("not ours" in p for p in problems) and any("internals" in p for p in problems)


def test_a_run_not_archived_must_say_so_and_exit_non_zero() -> None:
    assert judge_headline(seen("", version=HEAD, code=0, archived=False), START, HEAD) == [
        "exit 0 but nothing archived"]
    line = "softbee-runbook: error: [Errno 28] No space left on device: '/a/b.html'"
    assert judge_headline(seen(line, version=HEAD, archived=False), START, HEAD) == [
        "not archived, and stderr does not say so"]
    in_path = "softbee-runbook: error: boom (see /srv/archive/2026/x.html)"  # a path is no word
    assert judge_headline(seen(in_path, version=HEAD, archived=False), START, HEAD) == [
        "not archived, and stderr does not say so"]
    said = ("softbee-runbook: error: runbook 'upgrade_downgrade' passed, but could NOT be "
            "archived in /srv/archive: No space left on device")
    assert judge_headline(seen(said, version=HEAD, archived=False), START, HEAD) == []


def test_sigkill_says_nothing_and_is_judged_by_its_state_alone() -> None:
    assert judge_headline(seen("", code=-9, fault="sigkill", archived=False), START, HEAD) == []
    assert judge_headline(seen("", code=1, fault="sigkill"), START, HEAD)


def _echo_server() -> tuple[socket.socket, threading.Thread]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=_echo, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread


def _echo(conn: socket.socket) -> None:
    with conn:
        while True:
            try:
                data = conn.recv(1024)
            except OSError:
                return
            if not data:
                return
            conn.sendall(data)


def test_the_proxy_relays_cuts_every_connection_and_lets_new_ones_through() -> None:
    server, _ = _echo_server()
    proxy = Proxy(server.getsockname()[1])
    try:
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        client.sendall(b"bee")
        assert client.recv(16) == b"bee"
        assert proxy.cut() == 1
        with pytest.raises(OSError):  # reset, or closed: never an answer
            client.sendall(b"x" * 65536)
            if not client.recv(16):
                raise ConnectionResetError("closed")
        client.close()
        again = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        again.sendall(b"hive")
        assert again.recv(16) == b"hive"
        again.close()
    finally:
        proxy.stop()
        server.close()
