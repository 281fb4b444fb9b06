"""The fleet record in the archive: one more record of the hash-chained index, linking the runs.

``fleet run`` and the Airflow DAG append it (kind :data:`FLEET_KIND`) when a fleet ends;
``archive list --fleet`` and the fleet runbook read it back with the run records it links.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from softbee.runbook import archive

FLEET_KIND = "fleet"


def fleet_records(directory: Path, fleet_id: str | None = None) -> list[dict[str, Any]]:
    """The fleet records of the archive (or the one whose id starts with ``fleet_id``)."""
    records = [r for r in archive.read_index(directory) if r.get("kind") == FLEET_KIND]
    if fleet_id is None:
        return records
    return [r for r in records if str(r.get("fleet_id", "")).startswith(fleet_id)]


def fleet_runs(directory: Path, fleet_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A fleet's record and the run records it links, in the fleet's target order."""
    from softbee.runbook.errors import ArchiveError

    matches = fleet_records(directory, fleet_id)
    if not matches:
        raise ArchiveError(f"no fleet {fleet_id!r} in {directory / archive.INDEX_NAME}: "
                           "see softbee-runbook archive list")
    if len(matches) > 1:
        raise ArchiveError(f"fleet id {fleet_id!r} is ambiguous: give more characters")
    fleet = matches[0]
    wanted = [t.get("run_id") for t in fleet.get("targets", []) if t.get("run_id")]
    by_id = {r.get("run_id"): r for r in archive.read_index(directory)
             if r.get("kind") != FLEET_KIND}
    return fleet, [by_id[run_id] for run_id in wanted if run_id in by_id]
