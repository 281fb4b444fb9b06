"""A review's findings and checks: each check runs on its own, and one that raises is a finding.

As pytest-alembic runs each of its checks as its own test, a branch review runs each
check (the history, the models, one revision's SQL, its lint, a round trip...) through
:func:`run_check`: an exception becomes the finding "check X could not run: <cause>"
(an error: a review that could not look must not pass), and the other checks go on.
A check that could not start because an earlier one found nothing to work on is
*skipped*, with the reason, and counted as not checked, never as passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from softbee.runbook.review.findings import cause_of

SEVERITIES = ("error", "warning", "info")
FAIL_ON = ("error", "warning")
_RANK = {severity: rank for rank, severity in enumerate(SEVERITIES)}


@dataclass(frozen=True)
class Finding:
    """One problem a check found: which rule, how bad, what it is and what fixes it.

    ``rule`` is what an inline ignore names (``# runbook: ignore[rule] reason``);
    ``revision`` is the revision it is about, None for the branch as a whole.
    """

    check: str
    rule: str
    severity: str
    message: str
    fix: str = ""
    revision: str | None = None
    table: str | None = None  # the table it is about, where one is named

    def at_least(self, severity: str) -> bool:
        """True when this finding is as bad as ``severity`` or worse."""
        return _RANK.get(self.severity, 2) <= _RANK[severity]


@dataclass(frozen=True)
class Ignored:
    """A finding an inline ignore in its revision silenced, with the ignore's reason and line."""

    finding: Finding
    reason: str
    line: int


@dataclass
class CheckResult:
    """One check of the review: ``ran`` False when it was skipped or raised (then ``note`` says why)."""

    name: str
    revision: str | None = None
    findings: list[Finding] = field(default_factory=list)
    ran: bool = True
    raised: bool = False
    note: str = ""
    seconds: float = 0.0

    @property
    def title(self) -> str:
        """``lint 3c2e7a9d4f03``, or the check's name alone for a branch-wide check."""
        return f"{self.name} {self.revision}" if self.revision else self.name

    @property
    def status(self) -> str:
        """passed, failed (an error or warning), could not run, or skipped."""
        if self.raised:
            return "could not run"
        if not self.ran:
            return "skipped"
        return "failed" if any(f.at_least("warning") for f in self.findings) else "passed"


def run_check(name: str, revision: str | None, check: Callable[[], Iterable[Finding] | None],
              note: str = "") -> CheckResult:
    """Run ``check``; its findings, or the finding "check X could not run: <cause>" when it raises."""
    started = time.monotonic()
    title = f"{name} {revision}" if revision else name
    try:
        findings = list(check() or [])
    except Exception as exc:  # noqa: BLE001 - one check's failure is a finding, the review goes on
        cause = cause_of(exc)
        return CheckResult(name, revision, [Finding(
            name, "check-failed", "error", f"check {title} could not run: {cause}",
            "fix that cause and run the review again: this check's part was not reviewed",
            revision)], ran=False, raised=True, note=cause,
            seconds=time.monotonic() - started)
    return CheckResult(name, revision, findings, note=note, seconds=time.monotonic() - started)


def skipped(name: str, revision: str | None, why: str) -> CheckResult:
    """A check that did not run because ``why`` (an earlier check found nothing to work on)."""
    return CheckResult(name, revision, [], ran=False, note=why)


def worst(findings: Iterable[Finding]) -> str | None:
    """The worst severity among ``findings`` (None when there are none)."""
    ranks = [_RANK.get(f.severity, 2) for f in findings]
    return SEVERITIES[min(ranks)] if ranks else None


def count_by_severity(findings: Iterable[Finding]) -> dict[str, int]:
    """How many findings of each severity."""
    counts = dict.fromkeys(SEVERITIES, 0)
    for finding in findings:
        counts[finding.severity] = counts.get(finding.severity, 0) + 1
    return counts


def fails(findings: Iterable[Finding], fail_on: str) -> bool:
    """True when a finding is at or above ``fail_on`` (``error`` or ``warning``)."""
    return any(f.at_least(fail_on) for f in findings)
