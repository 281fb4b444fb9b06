"""Inline ignores in a revision file: ``# runbook: ignore[rule-id] reason``.

One comment anywhere in the revision's file silences the findings of that rule on that
revision (several rules: ``ignore[rule-a, rule-b]``). Every ignore that silenced something
is listed in the review with its reason; an ignore without a reason silences nothing and
is itself a finding (``ignore-without-reason``), and one that matched nothing is an info
(``unused-ignore``), so a stale ignore is seen. A failed check (``check-failed``) and the
ignore findings themselves cannot be ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from softbee.runbook.premerge.checks import Finding, Ignored

_IGNORE = re.compile(r"#\s*runbook:\s*ignore\[(?P<rules>[^\]]*)\]\s*(?P<reason>.*)$", re.IGNORECASE)
UNIGNORABLE = frozenset({"check-failed", "ignore-without-reason", "unused-ignore"})


@dataclass(frozen=True)
class InlineIgnore:
    """One ``# runbook: ignore[...]`` comment: its rules, its reason ("" when none) and its line."""

    rules: tuple[str, ...]
    reason: str
    line: int


def parse_ignores(source: str) -> list[InlineIgnore]:
    """Every inline ignore in a revision file's text, in line order."""
    found: list[InlineIgnore] = []
    for number, line in enumerate(source.splitlines(), start=1):
        if m := _IGNORE.search(line):
            rules = tuple(r.strip() for r in m["rules"].split(",") if r.strip())
            reason = m["reason"].strip().strip("-—:").strip()
            found.append(InlineIgnore(rules, reason if re.search(r"\w", reason) else "", number))
    return found


def apply_ignores(revision: str, path: str, ignores: list[InlineIgnore],
                  findings: list[Finding]) -> tuple[list[Finding], list[Ignored], list[Finding]]:
    """Split ``revision``'s findings into kept and ignored; the third list: the ignores' own findings."""
    usable = {rule: ignore for ignore in ignores if ignore.reason for rule in ignore.rules}
    kept: list[Finding] = []
    ignored: list[Ignored] = []
    used: set[str] = set()
    for finding in findings:
        ignore = usable.get(finding.rule)
        if finding.revision == revision and ignore is not None and finding.rule not in UNIGNORABLE:
            ignored.append(Ignored(finding, ignore.reason, ignore.line))
            used.add(finding.rule)
        else:
            kept.append(finding)
    own: list[Finding] = []
    for ignore in ignores:
        rules = ", ".join(ignore.rules) or "(no rule)"
        if not ignore.reason or not ignore.rules:
            own.append(Finding(
                "ignores", "ignore-without-reason", "error",
                f"{path}:{ignore.line}: `# runbook: ignore[{rules}]` gives no "
                f"{'reason' if ignore.rules else 'rule'}, so it ignores nothing",
                "say why after the bracket: `# runbook: ignore[rule-id] why this is safe here`",
                revision))
            continue
        for rule in ignore.rules:
            if rule not in used:
                own.append(Finding(
                    "ignores", "unused-ignore", "info",
                    f"{path}:{ignore.line}: `ignore[{rule}]` matched no finding of this revision",
                    "remove it, or check the rule id (the review lists each finding's rule)",
                    revision))
    return kept, ignored, own
