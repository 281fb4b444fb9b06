"""Round trips: there, back and there again, the schema and row counts checked at each end."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from softbee.runbook.engine.apply import apply_plan
from softbee.runbook.engine.dataloss import Snapshot, take_snapshot
from softbee.runbook.engine.result import Progress, Step
from softbee.runbook.project import Project
from softbee.runbook.review.diff import schema_of
from softbee.runbook.review.plan import Plan


def round_trip_phases(direction: str) -> tuple[str, str, str]:
    """How a failure names the phase of a round trip it happened in: first pass, back, re-apply."""
    back = "downgrade" if direction == "upgrade" else "upgrade"
    return (f"round trip, phase 1 of 3 ({direction})",
            f"round trip, phase 2 of 3 ({back}, after the {direction})",
            f"round trip, phase 3 of 3 (re-{direction}, after the {back})")


def round_trip_verdict(project: Project, plan: Plan, checks: list[dict[str, Any]]) -> str:
    """A round trip's result in one sentence: passed, failed (which checks), or nothing to do."""
    if not plan.scripts:
        heads = project.script().get_heads()
        where = "head" if plan.target is not None and list(heads) == [plan.target] else (
            plan.target or "base")
        return (f"nothing to round-trip: already at {where} (no {plan.direction}, no "
                f"downgrade ran; no check made)")
    back = "downgrade" if plan.direction == "upgrade" else "upgrade"
    failed = [check["check"] for check in checks if not check["ok"]]
    if failed:
        return (f"FAILED: {plan.direction}, {back}, {plan.direction} again over "
                f"{len(plan.scripts)} revision(s); {len(failed)} of {len(checks)} checks differ "
                f"({', '.join(failed)})")
    return (f"passed: {plan.direction}, {back}, {plan.direction} again over "
            f"{len(plan.scripts)} revision(s); schema and row counts identical at each end "
            f"({len(checks)} checks)")


def round_trip_checks(
    project: Project,
    conn: Connection,
    plan: Plan,
    before: Snapshot,
    schema_before: dict[str, dict[str, str]],
    count_mode: str,
    steps: list[Step],
    say: Progress,
    phases: tuple[str | None, ...] = (None, None, None),
) -> list[dict[str, Any]]:
    """Go back to the start and forward again, checking schema and counts at each end."""
    def rows_now() -> dict[str, int]:
        return take_snapshot(conn, count_mode, baseline=before).rows

    mid_rows, schema_mid = rows_now(), schema_of(conn)
    back_direction = "downgrade" if plan.direction == "upgrade" else "upgrade"
    back = Plan(back_direction, plan.target, plan.start, list(reversed(plan.scripts)))
    steps += apply_plan(project, conn, back, say, phase=phases[1])
    checks = [
        check_equal("schema back at start", schema_of(conn), schema_before),
        check_equal("row counts back at start", rows_now(), before.rows),
    ]
    steps += apply_plan(project, conn, plan, say, phase=phases[2])
    checks += [
        check_equal("schema after re-apply equals first apply", schema_of(conn), schema_mid),
        check_equal("row counts after re-apply equal first apply", rows_now(), mid_rows),
    ]
    return checks


def check_equal(name: str, got: Any, expected: Any) -> dict[str, Any]:
    """One check of a round trip: ``{"check": name, "ok": ..., "detail": ...}``."""
    ok = got == expected
    detail = "identical" if ok else _describe_difference(got, expected)
    return {"check": name, "ok": ok, "detail": detail}


def _describe_difference(got: dict[str, Any], expected: dict[str, Any]) -> str:
    keys = sorted(set(got) | set(expected))
    differing = [k for k in keys if got.get(k) != expected.get(k)]
    return "differs in: " + ", ".join(differing[:10])
