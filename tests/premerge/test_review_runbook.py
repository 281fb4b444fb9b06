"""The ``review`` runbook: the same review, run and archived like every runbook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import HEAD, HUNG_AFTER_S, REPO_ROOT
from tests.premerge.support import APP, branch, make_repo, revision

pytestmark = pytest.mark.notebook


def run(repo: Path, archive: Path, *pairs: str) -> subprocess.CompletedProcess[str]:
    """``softbee-runbook run review -p ...`` from ``repo``."""
    args = [arg for pair in zip(pairs[::2], pairs[1::2], strict=True) for arg in ("-p", *pair)]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "FLASK_ENV")}
    env["SOFTBEE_RUNBOOKS_DIR"] = str(REPO_ROOT / "runbooks")
    return subprocess.run(
        [sys.executable, "-m", "softbee.runbook", "run", "review", *args, "--archive-dir", str(archive)],
        cwd=repo, env=env, capture_output=True, text=True, timeout=HUNG_AFTER_S, check=False)


def test_a_review_with_findings_is_an_archived_failed_run_naming_them(tmp_path):
    repo = make_repo(tmp_path / "softbee-copy")
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps({"version": 1, "tables": {"users": {"rows": 40_000_000}}}))
    branch(repo, "big-update", dict([revision(
        "b2b2b2b2b2b2", HEAD, 'op.execute("UPDATE users SET first_name = trim(first_name)")',
        message="Trim spaces from users first names")]))

    done = run(repo, tmp_path / "archive", "base", "main", "app", APP, "stats", str(stats))

    assert done.returncode == 1, done.stdout + done.stderr
    assert "runbook 'review' failed at step '6. Verdict': ReviewFailed" in done.stderr
    assert "outcome:  1 revision(s) since main: 2 error(s)" in done.stdout
    [record] = [json.loads(line) for line in (tmp_path / "archive" / "index.jsonl").read_text().splitlines()]
    assert record["runbook"] == "review" and record["status"] == "failed"
    assert any("large-table-update" in line for line in record["extra_facts"]["review_findings"])


def test_a_bad_parameter_is_refused_before_anything_runs(tmp_path):
    done = run(tmp_path, tmp_path / "archive", "base", "main", "max_lock_minutes", "soon")

    assert done.returncode == 2
    assert "parameter 'max_lock_minutes' expects float" in done.stderr
    assert not (tmp_path / "archive").exists()
