"""Run one runbook on every target of a fleet: canary first, then waves, under a failure limit.

Each target is an ordinary run (its own kernel, started with the target's URL as
``DATABASE_URL`` in its environment, never on a command line; its own guards and
archive record). A target with binds also gets its runbook's ``bind_urls``, a secret
parameter: masked in the notebook, the real URLs in the kernel's environment.
``--parallel N`` runs them in N fleet workers (:mod:`softbee.runbook.fleet.worker`),
long-lived processes that keep what carries nothing of a target (imports, the checked
runbook, the HTML exporter) and launch the next target's kernel while the current one runs.
When the fleet ends, one fleet record is appended to the same archive index, linking the
runs: fleet id, per-target status, run id, revisions and the archived HTML; the auditors'
page is rebuilt once, then, rather than after every target.

Stopping (SIGTERM, Ctrl-C, or the failure limit) stops *starting* targets: the
running ones finish (each worker in its own session, so a terminal's Ctrl-C does not
reach it) and the record says what ran, what failed and what did not start.
Every wait is bounded: a target taking longer than ``target_timeout_s`` gets
SIGTERM (it archives itself as failed), then SIGKILL after ``KILL_GRACE_S``; the
worker is replaced for the targets after it.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from softbee.runbook import archive
from softbee.runbook.errors import ParameterError
from softbee.runbook.fleet.binds import check_bind_parameter
from softbee.runbook.fleet.drift import SKIPPED_DRIFT, DriftCheck, skip_drifted
from softbee.runbook.fleet.records import FLEET_KIND as FLEET_KIND
from softbee.runbook.fleet.records import fleet_records as fleet_records
from softbee.runbook.fleet.records import fleet_runs as fleet_runs
from softbee.runbook.fleet.target_run import (  # one target's run: its names stay here
    DEFAULT_TARGET_TIMEOUT_S as DEFAULT_TARGET_TIMEOUT_S,
)
from softbee.runbook.fleet.target_run import FAILED as FAILED
from softbee.runbook.fleet.target_run import KILL_GRACE_S as KILL_GRACE_S
from softbee.runbook.fleet.target_run import NOT_STARTED as NOT_STARTED
from softbee.runbook.fleet.target_run import PASSED as PASSED
from softbee.runbook.fleet.target_run import TargetRun as TargetRun
from softbee.runbook.fleet.target_run import problem_line
from softbee.runbook.fleet.target_run import run_target as run_target
from softbee.runbook.fleet.targets import Fleet, Target
from softbee.runbook.fleet.worker import WorkerProcess
from softbee.runbook.util.redact import Redactor
from softbee.urls import redact_text

POLL_S = 0.5


@dataclass(frozen=True)
class Stage:
    """Targets that start together: the canary, a wave, or the whole fleet."""

    label: str
    targets: tuple[Target, ...]


@dataclass
class Progress:
    """Where one stage stands, for the live line."""

    stage: str
    total: int
    done: int = 0
    failed: int = 0
    running: int = 0
    eta_s: float | None = None

    def line(self) -> str:
        """``wave 2: 5/12 done, 1 failed, 2 running, ETA 0:40``."""
        eta = "" if self.eta_s is None else f", ETA {int(self.eta_s // 60)}:{int(self.eta_s % 60):02d}"
        return (f"{self.stage}: {self.done}/{self.total} done, {self.failed} failed, "
                f"{self.running} running{eta}")


@dataclass
class FleetRun:
    """A finished (or stopped) fleet run: every target's outcome and the fleet record."""

    fleet_id: str
    runbook: str
    status: str
    stopped: str | None
    targets: list[TargetRun]
    record: dict[str, Any] = field(default_factory=dict)

    def with_status(self, status: str) -> list[TargetRun]:
        """The targets that ended with ``status``."""
        return [t for t in self.targets if t.status == status]


def plan(fleet: Fleet, *, canary: str | None = None, waves: bool = False) -> list[Stage]:
    """The stages in order: the canary alone, then each wave (or every other target at once)."""
    first = fleet.target(canary) if canary else None
    rest = [t for t in fleet.targets if first is None or t.name != first.name]
    stages = [Stage(f"canary {first.name}", (first,))] if first else []
    if waves:
        for number in sorted({t.wave for t in rest}):
            stages.append(Stage(f"wave {number}", tuple(t for t in rest if t.wave == number)))
    elif rest:
        stages.append(Stage("all targets", tuple(rest)))
    return stages


def run_fleet(
    runbook: str,
    fleet: Fleet,
    *,
    values: Mapping[str, Any] | None = None,
    texts: Mapping[str, str] | None = None,
    parallel: int = 1,
    canary: str | None = None,
    waves: bool = False,
    max_failures: int = 1,
    archive_dir: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    stop: threading.Event | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    target_timeout_s: float = DEFAULT_TARGET_TIMEOUT_S,
    drift: DriftCheck | None = None,
    allow_drift: bool = False,
) -> FleetRun:
    """Run ``runbook`` on the fleet's targets stage by stage, then append the fleet record.

    Parameters are checked against the notebook before anything starts (a
    :class:`ParameterError` changes nothing). A stage starts only while fewer than
    ``max_failures`` targets failed; a failed canary stops the fleet whatever the limit.
    With ``drift`` (:mod:`.drift`), a runbook that has ``allow_drift`` skips drifted targets
    unless ``allow_drift``, which is then passed to every target.
    """
    from softbee.runbook.run.catalog import check_parameters, find_runbook

    values, texts = dict(values or {}), dict(texts or {})
    if "database_url" in values or "database_url" in texts:
        raise ParameterError("database_url comes from each target's url_env: do not pass it "
                             "to a fleet run")  # bind_urls: check_bind_parameter, below
    if parallel < 1 or max_failures < 1:
        raise ParameterError("--parallel and --max-failures must be at least 1")
    found = find_runbook(runbook)
    gated = found.parameter("allow_drift") is not None
    if allow_drift and gated:
        texts["allow_drift"] = "true"
    parameters = check_parameters(found, values=values, texts=texts)
    directory = archive.archive_dir(archive_dir)
    archive.check_writable(directory)
    environ = dict(os.environ if environ is None else environ)
    urls = {t.name: t.resolve_url(environ) for t in fleet.targets}  # TargetsError: nothing ran
    bind_urls = {t.name: t.resolve_bind_urls(environ) for t in fleet.targets if t.binds}
    check_bind_parameter(found, bind_urls, values, texts)
    stages, skipped = skip_drifted(plan(fleet, canary=canary, waves=waves), urls, drift,
                                   allow_drift, gated, bind_urls)
    stop = stop or threading.Event()
    project = Path(cwd if cwd is not None else os.getcwd()).absolute()

    fleet_id = uuid.uuid4().hex[:12]
    started = dt.datetime.now(dt.UTC)
    results = {t.name: TargetRun(t.name, t.wave, s.label, binds=t.binds)
               for s in stages for t in s.targets}
    stopped: str | None = None
    if canary and canary in skipped:
        stages, stopped = [], f"the canary {canary} was skipped: it has drifted"
    drifted = [TargetRun(t.name, t.wave, "drift", SKIPPED_DRIFT, error=skipped[t.name].message)
               for t in fleet.targets if t.name in skipped]
    slots = _Slots(parallel, found.name, values, texts, directory, project, environ, urls,
                   bind_urls, target_timeout_s)
    try:
        for stage in stages:
            failures = sum(r.status == FAILED for r in results.values())
            if stop.is_set() or failures >= max_failures:
                break
            outcome = _run_stage(stage, slots, max_failures - failures, stop, on_progress)
            results.update({r.name: r for r in outcome})
            if stage.label.startswith("canary") and any(r.status == FAILED for r in outcome):
                stopped = f"the canary {stage.targets[0].name} failed"
                break
    finally:
        slots.close()
    if stopped is None and any(r.status == NOT_STARTED for r in results.values()):
        failures = sum(r.status == FAILED for r in results.values())
        stopped = ("stopped by signal: running targets finished, no new one started"
                   if stop.is_set() else
                   f"failure limit reached: {failures} failed (--max-failures {max_failures})")

    ordered = [results[t.name] for s in stages for t in s.targets] + drifted
    failed = any(r.status != PASSED for r in ordered)
    status = "stopped" if stopped else (FAILED if failed else PASSED)
    redactor = Redactor.for_run({**parameters}, environ)
    record = {
        "kind": FLEET_KIND,
        "run_id": fleet_id,
        "fleet_id": fleet_id,
        "runbook": found.name,
        "status": status,
        "stopped": stopped,
        "started_at": _iso(started),
        "finished_at": _iso(dt.datetime.now(dt.UTC)),
        "duration_s": round((dt.datetime.now(dt.UTC) - started).total_seconds(), 3),
        "parameters": redactor.parameters(parameters),
        "parallel": parallel,
        "max_failures": max_failures,
        "canary": canary,
        "waves": waves,
        "targets_file": str(fleet.path),
        "counts": {s: sum(r.status == s for r in ordered) for s in (PASSED, FAILED, NOT_STARTED)}
        | ({SKIPPED_DRIFT: len(drifted)} if drifted else {}),
        "allow_drift": allow_drift,
        "targets": [asdict(r) for r in ordered],
        "user": _os_user(),
        "host": socket.gethostname(),
        "project_dir": str(project),
    }
    record = archive.append_record(directory, record)
    from softbee.runbook.archive.auditpage import write_index_page

    write_index_page(directory)  # once for the fleet: its runs and its record
    return FleetRun(fleet_id, found.name, status, stopped, ordered, record)


class _Slots:
    """``parallel`` fleet workers, each started on first use and replaced if it dies."""

    def __init__(self, parallel: int, runbook: str, values: Mapping[str, Any],
                 texts: Mapping[str, str], archive_dir: Path, project: Path,
                 environ: Mapping[str, str], urls: Mapping[str, str],
                 bind_urls: Mapping[str, Mapping[str, str]], timeout_s: float) -> None:
        self.count = parallel
        self.urls = urls
        self.bind_urls = bind_urls
        self.timeout_s = timeout_s
        self._workers: list[WorkerProcess | None] = [None] * parallel
        self._start = dict(runbook=runbook, values=values, texts=texts,
                           archive_dir=archive_dir, cwd=project, environ=environ)
        self._lock = threading.Lock()

    def run(self, slot: int, stage: str, target: Target, following: Target | None) -> TargetRun:
        """Run ``target`` on this slot's worker, telling it which target should come next."""
        result = TargetRun(target.name, target.wave, stage, binds=target.binds)
        began = time.monotonic()
        url, binds = self.urls[target.name], self.bind_urls.get(target.name)
        try:
            worker = self._worker(slot)
        except RuntimeError as exc:
            answer: dict[str, Any] = {"status": FAILED, "error": str(exc)}
        else:
            answer = worker.run(target.name, url, binds,
                                (following.name, self.urls[following.name],
                                 self.bind_urls.get(following.name)) if following
                                else None, self.timeout_s, KILL_GRACE_S)
        result.duration_s = round(time.monotonic() - began, 3)
        result.status = PASSED if answer.get("status") == PASSED else FAILED
        result.run_id = answer.get("run_id")
        result.revision_before = answer.get("revision_before")
        result.revision_after = answer.get("revision_after")
        result.html = answer.get("html")
        error = answer.get("error")
        if error:
            redact = Redactor.for_run({"bind_urls": binds or {}}, {"DATABASE_URL": url}).text
            text = (f"{error.get('type')}: {problem_line(error.get('message'))}"
                    if isinstance(error, dict) else problem_line(error))
            result.error = redact(redact_text(text))
        return result

    def _worker(self, slot: int) -> WorkerProcess:
        worker = self._workers[slot]
        if worker is None or not worker.alive:
            if worker is not None:
                worker.close(timeout_s=KILL_GRACE_S)
            worker = WorkerProcess(**self._start)  # type: ignore[arg-type]
            self._workers[slot] = worker
        return worker

    def close(self) -> None:
        """End every worker (each stops the kernel it launched for a target it will not run)."""
        for worker in self._workers:
            if worker is not None:
                worker.close()
        self._workers = [None] * self.count


def _run_stage(
    stage: Stage,
    slots: _Slots,
    allowed_failures: int,
    stop: threading.Event,
    on_progress: Callable[[Progress], None] | None,
) -> list[TargetRun]:
    """Run a stage's targets on the slots; stop starting on ``stop`` or the failure limit.

    Each slot takes the next target (the one its worker was told would come next, when
    no other slot took it), and names the following one so that its kernel starts while
    this one runs. The hint never crosses a stage: the next stage may not start.
    """
    waiting = list(stage.targets)
    hinted: dict[int, str] = {}  # slot -> the target its worker launched a kernel for
    finished: list[TargetRun] = []
    durations: list[float] = []
    progress = Progress(stage.label, len(waiting))
    lock = threading.Lock()
    changed = threading.Event()

    def take(slot: int) -> tuple[Target, Target | None] | None:
        with lock:
            failures = sum(r.status == FAILED for r in finished)
            if not waiting or stop.is_set() or failures >= allowed_failures:
                hinted.pop(slot, None)
                return None
            others = {name for other, name in hinted.items() if other != slot}
            mine = [t for t in waiting if t.name == hinted.get(slot)]
            free = [t for t in waiting if t.name not in others]
            target = (mine or free or waiting)[0]
            waiting.remove(target)
            following = next((t for t in waiting if t.name not in others), None)
            if following is None:
                hinted.pop(slot, None)
            else:
                hinted[slot] = following.name
            progress.running += 1
            changed.set()
            return target, following

    def serve(slot: int) -> None:
        while (job := take(slot)) is not None:
            result = slots.run(slot, stage.label, *job)
            with lock:
                finished.append(result)
                if result.duration_s is not None:
                    durations.append(result.duration_s)
                progress.running -= 1
                progress.done += 1
                progress.failed += result.status == FAILED
                changed.set()

    threads = [threading.Thread(target=serve, args=(slot,), daemon=True,
                                name=f"fleet-slot-{slot}")
               for slot in range(min(slots.count, len(waiting)))]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        changed.wait(POLL_S)
        changed.clear()
        with lock:
            progress.eta_s = _eta(durations, len(waiting) + progress.running, slots.count)
        if on_progress:
            on_progress(progress)
    for thread in threads:
        thread.join()
    progress.running = 0
    progress.eta_s = None
    if on_progress:
        on_progress(progress)
    return finished


def _eta(durations: Sequence[float], left: int, parallel: int) -> float | None:
    if not durations:
        return None
    return sum(durations) / len(durations) * left / parallel


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _os_user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is not worth failing a fleet over
        return None
