"""What the CLI prints of a run (run/report.py): each bind's line says what its record says."""

from __future__ import annotations

import io

from softbee.runbook.run.report import print_summary


def _printed(record: dict) -> list[str]:
    out = io.StringIO()
    print_summary(record, out)
    return out.getvalue().splitlines()


def test_a_partly_migrated_run_prints_where_each_bind_really_is() -> None:
    record = {"runbook": "upgrade_downgrade", "status": "failed", "extra_facts": {"binds": {
        "audit": {"revision_before": "a3", "revision_after": "a3", "outcome": "rolled back at a3"},
        "default": {"revision_before": "a3", "revision_after": "a4", "outcome": "upgrade a3 -> a4"},
        "archive": {"outcome": "not run: an earlier bind failed"},
    }}}
    lines = [line for line in _printed(record) if line.startswith("bind ")]
    assert lines == [
        "bind default: a3 -> a4  (upgrade a3 -> a4)",
        "bind audit: a3 -> a3  (rolled back at a3)",
        "bind archive: not run: an earlier bind failed",
    ]
