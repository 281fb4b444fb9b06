"""fleet_run: canary, waves, the failure limit, unreachable targets, SIGTERM and the fleet record.

The toy runbook (tests/examples/fleet_runbooks/toy_fleet.ipynb) reads the target's
alembic_version and fails on the revision ``fail00000000``: each run is a real
``softbee-runbook run`` in its own process, only faster than a migration.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from softbee.runbook import archive, cli
from softbee.runbook.archive import read_index, verify_archive
from softbee.runbook.fleet.fleet_run import FAILED, NOT_STARTED, PASSED, fleet_runs, plan, run_fleet
from softbee.runbook.fleet.targets import load_targets
from tests.fleet.test_fleet import stamped_sqlite
from tests.helpers import EXAMPLES, REPO_ROOT

pytestmark = pytest.mark.notebook

TOYS = EXAMPLES / "fleet_runbooks"
FAIL = "fail00000000"


@pytest.fixture(autouse=True)
def _toy_runbooks(monkeypatch):
    monkeypatch.setenv("SOFTBEE_RUNBOOKS_DIR", str(TOYS))


def fleet_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
               targets: list[tuple[str, int, str]]) -> Path:
    """``(name, wave, url)`` targets in a file, each URL in its own variable."""
    lines = ["targets:"]
    for number, (name, wave, url) in enumerate(targets):
        monkeypatch.setenv(f"FLEET_T{number}_URL", url)
        lines.append(f"  - {{name: {name}, url_env: FLEET_T{number}_URL, wave: {wave}}}")
    path = tmp_path / "targets.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def db(tmp_path: Path, name: str, revision: str = "abc123") -> str:
    return stamped_sqlite(tmp_path / f"{name}.db", revision)


def test_plan_puts_the_canary_first_then_waves_in_order(tmp_path, monkeypatch):
    path = fleet_file(tmp_path, monkeypatch, [("a", 2, "sqlite:///a"), ("b", 1, "sqlite:///b"),
                                              ("c", 1, "sqlite:///c")])
    stages = plan(load_targets(path), canary="c", waves=True)
    assert [(s.label, [t.name for t in s.targets]) for s in stages] == [
        ("canary c", ["c"]), ("wave 1", ["b"]), ("wave 2", ["a"])]
    assert [s.label for s in plan(load_targets(path))] == ["all targets"]


def test_canary_then_waves_each_archived_and_linked_by_one_fleet_record(tmp_path, monkeypatch):
    path = fleet_file(tmp_path, monkeypatch, [
        ("w1-a", 1, db(tmp_path, "w1a")), ("w2-a", 2, db(tmp_path, "w2a")),
        ("canary", 2, db(tmp_path, "can"))])
    archive_dir = tmp_path / "archive"
    result = run_fleet("toy_fleet", load_targets(path), parallel=2, canary="canary", waves=True,
                       archive_dir=archive_dir, cwd=REPO_ROOT)
    assert result.status == PASSED
    assert [(t.name, t.stage, t.status) for t in result.targets] == [
        ("canary", "canary canary", PASSED), ("w1-a", "wave 1", PASSED),
        ("w2-a", "wave 2", PASSED)]
    records = read_index(archive_dir)
    runs = {r["run_id"]: r for r in records if r.get("kind") != "fleet"}
    assert len(runs) == 3 and records[-1]["kind"] == "fleet"
    by_target = {t.name: runs[t.run_id] for t in result.targets}
    assert by_target["canary"]["finished_at"] <= by_target["w1-a"]["started_at"]
    assert by_target["w1-a"]["finished_at"] <= by_target["w2-a"]["started_at"]
    fleet, linked = fleet_runs(archive_dir, result.fleet_id[:6])
    assert [r["run_id"] for r in linked] == [t.run_id for t in result.targets]
    assert fleet["targets"][0]["revision_before"] == "abc123"
    assert verify_archive(archive_dir) == []


def test_failure_limit_stops_before_the_next_wave_and_names_what_did_not_start(
        tmp_path, monkeypatch):
    path = fleet_file(tmp_path, monkeypatch, [
        ("ok", 1, db(tmp_path, "ok")), ("broken", 1, db(tmp_path, "broken", FAIL)),
        ("later-1", 2, db(tmp_path, "l1")), ("later-2", 3, db(tmp_path, "l2"))])
    archive_dir = tmp_path / "archive"
    result = run_fleet("toy_fleet", load_targets(path), parallel=2, waves=True, max_failures=1,
                       archive_dir=archive_dir, cwd=REPO_ROOT)
    assert result.status == "stopped" and "failure limit" in (result.stopped or "")
    assert {t.name: t.status for t in result.targets} == {
        "ok": PASSED, "broken": FAILED, "later-1": NOT_STARTED, "later-2": NOT_STARTED}
    broken = result.with_status(FAILED)[0]
    assert Path(broken.html).is_file() and "toy failure" in (broken.error or "")
    assert read_index(archive_dir)[-1]["counts"] == {PASSED: 1, FAILED: 1, NOT_STARTED: 2}


def test_an_unreachable_target_fails_alone_and_the_fleet_goes_on(tmp_path, monkeypatch):
    path = fleet_file(tmp_path, monkeypatch, [
        ("nowhere", 1, "postgresql://postgres:s3cret-pw@127.0.0.1:1/x"),
        ("fine", 2, db(tmp_path, "fine"))])
    archive_dir = tmp_path / "archive"
    result = run_fleet("toy_fleet", load_targets(path), parallel=1, waves=True, max_failures=2,
                       archive_dir=archive_dir, cwd=REPO_ROOT)
    assert [t.status for t in result.targets] == [FAILED, PASSED]
    assert result.status == FAILED and result.stopped is None
    assert "OperationalError" in (result.targets[0].error or "")
    everything = (archive_dir / "index.jsonl").read_text() + "".join(
        p.read_text() for p in archive_dir.rglob("*.ipynb"))
    assert "s3cret-pw" not in everything


def test_a_failed_canary_stops_the_fleet_whatever_the_limit(tmp_path, monkeypatch, capsys):
    path = fleet_file(tmp_path, monkeypatch, [
        ("canary", 1, db(tmp_path, "c", FAIL)), ("rest", 1, db(tmp_path, "r"))])
    code = cli.main(["fleet", "run", "toy_fleet", str(path), "--canary", "canary",
                     "--max-failures", "5", "--archive-dir", str(tmp_path / "archive")])
    captured = capsys.readouterr()
    assert code == 1
    assert "the canary canary failed" in captured.out
    rest = [line for line in captured.out.splitlines() if line.startswith("rest ")]
    assert len(rest) == 1 and "not started" in rest[0]
    fleet_id = read_index(tmp_path / "archive")[-1]["fleet_id"]
    assert cli.main(["archive", "list", "--fleet", fleet_id,
                     "--archive-dir", str(tmp_path / "archive")]) == 0
    listed = capsys.readouterr().out
    assert f"fleet {fleet_id}  toy_fleet  stopped" in listed and ".html" in listed


def test_bad_parameters_and_database_url_are_refused_before_anything_runs(tmp_path, monkeypatch,
                                                                          capsys):
    path = fleet_file(tmp_path, monkeypatch, [("a", 1, db(tmp_path, "a"))])
    for extra in (["-p", "no_such_parameter", "1"], ["-p", "database_url", "sqlite:///x"]):
        assert cli.main(["fleet", "run", "toy_fleet", str(path), *extra,
                         "--archive-dir", str(tmp_path / "archive")]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 2
    assert not (tmp_path / "archive").exists()


def test_sigterm_mid_fleet_lets_the_running_target_finish_and_records_the_rest(
        tmp_path, monkeypatch):
    markers = tmp_path / "markers"
    markers.mkdir()
    path = fleet_file(tmp_path, monkeypatch, [
        (f"t{n}", 1, db(tmp_path, f"t{n}")) for n in range(2)])
    archive_dir = tmp_path / "archive"
    proc = subprocess.Popen(
        [sys.executable, "-m", "softbee.runbook", "fleet", "run", "toy_fleet", str(path),
         "-p", "hold_s", "2", "-p", "marker_dir", str(markers), "--archive-dir", str(archive_dir)],
        cwd=REPO_ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        deadline = time.monotonic() + 60
        while not any(markers.iterdir()) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert any(markers.iterdir()), "the first target never started"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert "SIGTERM: no new target starts" in err
    fleet = read_index(archive_dir)[-1]
    assert fleet["status"] == "stopped" and fleet["stopped"].startswith("stopped by signal")
    assert [t["status"] for t in fleet["targets"]] == [PASSED, NOT_STARTED]
    assert len(list(markers.iterdir())) == 1
    assert archive.verify_archive(archive_dir) == []


def test_a_worker_reuses_no_kernel_and_no_target_finds_what_the_previous_one_left(
        tmp_path, monkeypatch):
    """One worker, three targets in a row, each kernel started while the previous target ran."""
    path = fleet_file(tmp_path, monkeypatch,
                      [(f"t{n}", 1, db(tmp_path, f"t{n}")) for n in range(3)])
    archive_dir = tmp_path / "archive"

    result = run_fleet("toy_isolation", load_targets(path), parallel=1, archive_dir=archive_dir,
                       cwd=REPO_ROOT)

    assert result.status == PASSED, [t.error for t in result.targets]
    runs = {r["run_id"]: r for r in read_index(archive_dir) if r.get("kind") != "fleet"}
    facts = [runs[t.run_id]["extra_facts"] for t in result.targets]
    assert [f["seen_database"] for f in facts] == ["t0.db", "t1.db", "t2.db"]  # its own URL
    for fact in facts:  # nothing of the target before: no variable, variable or module state
        assert fact["found"] == {"variables": [], "environment": None, "preloaded": True,
                                 "module_state": None}, fact
    assert len({f["kernel_pid"] for f in facts}) == 3  # a kernel each, never reused
    assert all(runs[t.run_id]["database"]["database"].endswith(f"{t.name}.db")
               for t in result.targets)


def test_a_target_past_its_timeout_is_archived_as_failed_and_the_next_one_still_runs(
        tmp_path, monkeypatch):
    path = fleet_file(tmp_path, monkeypatch, [("slow", 1, db(tmp_path, "slow")),
                                              ("after", 1, db(tmp_path, "after"))])
    archive_dir = tmp_path / "archive"

    result = run_fleet("toy_isolation", load_targets(path), texts={"slow_database": "slow.db"},
                       parallel=1, max_failures=2, archive_dir=archive_dir, cwd=REPO_ROOT,
                       target_timeout_s=8)

    slow, after = result.targets
    assert (slow.status, after.status) == (FAILED, PASSED)
    assert "timed out after 8 s" in (slow.error or "")
    assert slow.run_id and Path(slow.html).is_file()  # it archived itself as it stopped
    assert verify_archive(archive_dir) == []


def test_the_auditors_page_is_written_once_the_fleet_ends_with_every_run_in_it(
        tmp_path, monkeypatch):
    from softbee.runbook.archive import auditpage

    written = []
    real = auditpage.write_index_page
    monkeypatch.setattr(auditpage, "write_index_page",
                        lambda directory: written.append(directory) or real(directory))
    path = fleet_file(tmp_path, monkeypatch,
                      [(f"p{n}", 1, db(tmp_path, f"p{n}")) for n in range(2)])
    archive_dir = tmp_path / "archive"

    result = run_fleet("toy_fleet", load_targets(path), parallel=2, archive_dir=archive_dir,
                       cwd=REPO_ROOT)

    page = (archive_dir / "index.html").read_text()
    assert written == [archive_dir]  # the workers' runs leave it to the fleet
    assert all(t.run_id in page for t in result.targets)
