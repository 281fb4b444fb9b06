"""What the fleet runbook shows: the status table, revisions across the fleet, the failures."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from softbee.runbook.fleet.status import FleetStatus, status_rows


def project_path(path: str | os.PathLike[str], migrations_dir: str = "migrations") -> Path:
    """``path`` as given when absolute, else below the project root (found as the runbooks find it)."""
    from softbee.runbook.util.roots import project_root

    given = Path(path)
    return given if given.is_absolute() else project_root(migrations_dir) / given


def status_frame(status: FleetStatus) -> pd.DataFrame:
    """One row per state and revision (and bind, when targets have binds), with the targets."""
    columns = ["targets", "state", "bind", "revision", "names"] if status.has_binds else [
        "targets", "state", "revision", "names"]
    return pd.DataFrame(status_rows(status, limit=8), columns=columns)


def latest_fleet(archive_dir: str | os.PathLike[str] | None = None,
                 fleet_id: str | None = None) -> dict[str, Any] | None:
    """The fleet record ``fleet_id`` (or the latest one) from the archive; None when there is none."""
    from softbee.runbook import archive
    from softbee.runbook.fleet.records import fleet_records

    records = fleet_records(archive.archive_dir(archive_dir), fleet_id)
    return records[-1] if records else None


def revision_counts(status: FleetStatus, record: dict[str, Any] | None = None) -> pd.DataFrame:
    """Targets per revision now, and before and after the fleet run ``record`` when given."""
    columns: dict[str, Counter[str]] = {
        "now": Counter(t.revision if t.state != "unreachable" else "unreachable"
                       for t in status.targets)}
    if record is not None:
        for when in ("before", "after"):
            columns[f"run {when}"] = Counter(
                str(t.get(f"revision_{when}") or ("not run" if not t.get("run_id") else "base"))
                for t in record.get("targets") or [])
    frame = pd.DataFrame(columns).fillna(0).astype(int)
    return frame.sort_index()


def revision_chart(counts: pd.DataFrame) -> Any:
    """A bar chart of targets per revision (one bar group per revision, one bar per moment)."""
    axes = counts.plot.bar(rot=30, figsize=(8, 3.5))
    axes.set_xlabel("revision")
    axes.set_ylabel("targets")
    axes.set_title("Revisions across the fleet")
    return axes


def failures_frame(record: dict[str, Any] | None) -> pd.DataFrame:
    """The failed and not-started targets of a fleet record, with the archived HTML to read."""
    rows = [
        {"target": t.get("name"), "stage": t.get("stage"), "status": t.get("status"),
         "error": t.get("error") or "", "html": t.get("html") or ""}
        for t in (record or {}).get("targets") or [] if t.get("status") != "passed"
    ]
    return pd.DataFrame(rows, columns=["target", "stage", "status", "error", "html"])
