"""Inline ignores: ``# runbook: ignore[rule-id] reason``, listed with their reasons."""

from __future__ import annotations

from softbee.runbook.premerge.checks import Finding
from softbee.runbook.premerge.ignores import apply_ignores, parse_ignores

SOURCE = """\"\"\"Trim users\"\"\"
# runbook: ignore[large-table-update, lock-time-over-threshold] done in the maintenance window
# runbook: ignore[drop-column]
# runbook: ignore[blocking-index-build] -- the index is tiny in production
"""


def finding(rule: str, revision: str = "r1", severity: str = "error") -> Finding:
    return Finding("lint", rule, severity, f"{rule} happened", "fix it", revision)


def test_ignores_are_read_with_their_rules_reasons_and_lines():
    found = parse_ignores(SOURCE)

    assert [(i.rules, i.reason, i.line) for i in found] == [
        (("large-table-update", "lock-time-over-threshold"), "done in the maintenance window", 2),
        (("drop-column",), "", 3),
        (("blocking-index-build",), "the index is tiny in production", 4)]


def test_an_ignore_with_a_reason_silences_its_rule_on_its_revision_only():
    findings = [finding("large-table-update"), finding("large-table-update", revision="r2"),
                finding("check-failed")]

    kept, ignored, own = apply_ignores("r1", "v/r1.py", parse_ignores(SOURCE), findings)

    assert [(i.finding.rule, i.reason, i.line) for i in ignored] == [
        ("large-table-update", "done in the maintenance window", 2)]
    assert [(f.rule, f.revision) for f in kept] == [("large-table-update", "r2"), ("check-failed", "r1")]
    assert {(f.rule, f.severity) for f in own} == {
        ("ignore-without-reason", "error"), ("unused-ignore", "info")}


def test_an_ignore_without_a_reason_silences_nothing_and_says_so():
    kept, ignored, [own] = apply_ignores("r1", "v/r1.py", parse_ignores(
        "# runbook: ignore[drop-column]   \n"), [finding("drop-column")])

    assert ignored == [] and [f.rule for f in kept] == ["drop-column"]
    assert own.rule == "ignore-without-reason" and own.message.startswith("v/r1.py:1:")
    assert parse_ignores("# runbook: ignore[x] --\n")[0].reason == ""
