"""Applying a plan's revisions with Alembic, one at a time, timed and told to an observer."""

from __future__ import annotations

import time
from typing import Any

from alembic import command
from alembic.script import Script
from sqlalchemy.engine import Connection

from softbee.runbook.engine.result import Progress, Step, StepObserver
from softbee.runbook.project import Project
from softbee.runbook.review.plan import Plan
from softbee.runbook.review.state import down_revisions


def apply_plan(
    project: Project, conn: Connection, plan: Plan, say: Progress,
    observer: StepObserver | None = None, phase: str | None = None,
) -> list[Step]:
    """Run the plan's scripts one at a time on ``conn``, timing each.

    ``phase`` names the round trip's phase these steps are (a failure carries it).
    """
    try:
        return _apply_steps(project, conn, plan, say, observer)
    except Exception as exc:
        if phase is not None and getattr(exc, "_softbee_phase", None) is None:
            setattr(exc, "_softbee_phase", phase)
        raise


def _apply_steps(
    project: Project, conn: Connection, plan: Plan, say: Progress, observer: StepObserver | None
) -> list[Step]:
    steps: list[Step] = []
    total = len(plan.scripts)
    if not total:  # nothing to run: no need to route (and so probe) the project's env.py
        return steps
    with project.bound(conn) as config:
        for number, script in enumerate(plan.scripts, start=1):
            message = (script.doc or "").strip()
            say(f"[{number}/{total}] {plan.direction} {script.revision}: {message}")
            started = time.perf_counter()
            if observer is not None:
                observer.step_started(conn, script)
            migrate_one(config, plan, script)
            seconds = round(time.perf_counter() - started, 3)
            if observer is not None:
                observer.step_finished(conn, script)
            steps.append(Step(plan.direction, script.revision, message, seconds))
            say(f"      done in {seconds:.3f}s")
    return steps


def migrate_one(config: Any, plan: Plan, script: Script) -> None:
    """Run one script of ``plan`` with Alembic; a failure carries the script it happened in."""
    destination = script.revision
    if plan.direction == "downgrade":
        parents = down_revisions(script)
        # below a merge point, go straight to the target; elsewhere one step down
        destination = (plan.target or "base") if len(parents) > 1 else (
            parents[0] if parents else "base")
    try:
        if plan.direction == "upgrade":
            command.upgrade(config, destination)
        else:
            command.downgrade(config, destination)
    except Exception as exc:
        exc.add_note(f"softbee-runbook: while running {script.revision} "
                     f"({(script.doc or '').strip()})")
        exc._softbee_script = script
        raise
