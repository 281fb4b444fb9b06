"""One target of a fleet: ``softbee-runbook run`` in a child process, bounded, read back.

Its URL travels in ``DATABASE_URL`` (never on a command line); a target's ``bind_urls``
and the ``-f`` values travel on the child's standard input (``-f /dev/stdin``), never on a
command line nor in a file; the child hides them like any secret parameter. A run that
outlives its timeout is sent SIGTERM (it archives itself as failed), then SIGKILL after
``KILL_GRACE_S``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from softbee.runbook import archive
from softbee.runbook.fleet.targets import Target
from softbee.runbook.util.redact import Redactor
from softbee.urls import redact_text

PASSED, FAILED, NOT_STARTED = "passed", "failed", "not started"
DEFAULT_TARGET_TIMEOUT_S = 3600.0
KILL_GRACE_S = 60.0
#: ``-f`` reads the values from the child's standard input (Linux and macOS name it so).
STDIN_PATH = "/dev/stdin"
_RUN_LINE = re.compile(r"^run:\s+(?P<run_id>[0-9a-f]{12})\b", re.MULTILINE)


@dataclass
class TargetRun:
    """One target's outcome in a fleet run."""

    name: str
    wave: int
    stage: str
    status: str = NOT_STARTED
    run_id: str | None = None
    revision_before: str | None = None
    revision_after: str | None = None
    html: str | None = None
    error: str | None = None
    duration_s: float | None = None
    binds: tuple[str, ...] = ()  # the target's binds besides the default (names, never URLs)


def run_target(
    runbook: str,
    target: Target,
    url: str,
    *,
    texts: Mapping[str, str],
    values: Mapping[str, Any],
    archive_dir: Path,
    cwd: Path,
    environ: Mapping[str, str] | None = None,
    timeout_s: float = DEFAULT_TARGET_TIMEOUT_S,
    stage: str = "",
    bind_urls: Mapping[str, str] | None = None,
) -> TargetRun:
    """``softbee-runbook run`` on one target, its URL in ``DATABASE_URL``; read back its record.

    ``bind_urls`` (a target with binds) is passed as the runbook's ``bind_urls`` parameter.
    """
    import yaml

    command = [sys.executable, "-m", "softbee.runbook", "run", runbook,
               "--archive-dir", str(archive_dir)]
    for key, text in texts.items():
        command += ["-p", key, text]
    values = {**values, "bind_urls": dict(bind_urls)} if bind_urls else dict(values)
    given = yaml.safe_dump(values) if values else None  # on stdin: no file, no command line
    if given is not None:
        command += ["-f", STDIN_PATH]
    env = {**(os.environ if environ is None else environ), "DATABASE_URL": url}
    result = TargetRun(target.name, target.wave, stage, binds=tuple(bind_urls or ()))
    began = time.monotonic()
    done = _bounded_run(command, cwd, env, timeout_s, given)
    result.duration_s = round(time.monotonic() - began, 3)
    match = _RUN_LINE.search(done.stdout)
    redact = Redactor.for_run({"bind_urls": dict(bind_urls or {})}, {"DATABASE_URL": url}).text
    if match:
        run = archive.find_run(archive_dir, match["run_id"])
        record = run.record
        result.run_id = record.get("run_id")
        result.status = PASSED if run.passed else FAILED
        result.revision_before = record.get("revision_before")
        result.revision_after = record.get("revision_after")
        result.html = str(run.html)
        error = record.get("error") or {}
        if error:
            result.error = redact(f"{error.get('type')}: {problem_line(error.get('message'))}")
    else:  # the run never reached the archive (bad input, a crash, a kill)
        result.status = FAILED
        result.error = redact(redact_text(problem_line(done.stderr) or f"exit {done.returncode}"))
    return result


def _bounded_run(
    command: list[str], cwd: Path, env: Mapping[str, str], timeout_s: float,
    given: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in its own session, ``given`` on its stdin; SIGTERM at ``timeout_s``,
    SIGKILL after the grace."""
    with subprocess.Popen(command, cwd=cwd, env=dict(env), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, stdin=subprocess.PIPE if given is not None
                          else subprocess.DEVNULL, text=True, start_new_session=True) as proc:
        try:
            out, err = proc.communicate(given, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)  # the run archives itself as failed
            try:
                out, err = proc.communicate(timeout=KILL_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            err = f"timed out after {timeout_s:.0f} s\n{err}"
        return subprocess.CompletedProcess(command, proc.returncode, out, err)


def problem_line(text: Any) -> str:
    """The line that names the problem: a ``softbee-runbook:`` line, else the first line."""
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    named = [line for line in lines if line.startswith("softbee-runbook:")]
    return (named or lines or [""])[-1 if named else 0]
