"""A branch review as CI reads it: text, a Markdown PR comment, JSON, and JUnit XML.

The Markdown is a pull-request comment, so it must stay under GitHub's 65,536 characters
(:data:`MARKDOWN_LIMIT`) whatever the branch: a summary table, the branch-wide checks, then
one collapsed ``<details>`` per revision with its findings, ignores and SQL. The findings are
never cut; the SQL shares what is left, each revision's cut at a line with a note saying how
much was left out (the JSON and the text report carry it whole). JUnit has one test case per
check: a failure for an error or warning, an error for a check that could not run, skipped
for one that did not.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any
from xml.etree import ElementTree as ET

from softbee.runbook.premerge.branch_review import BranchReview
from softbee.runbook.premerge.checks import (
    SEVERITIES,
    CheckResult,
    Finding,
    count_by_severity,
    worst,
)
from softbee.runbook.premerge.locktime import human_seconds
from softbee.runbook.premerge.revision_checks import ReviewedRevision

MARKDOWN_LIMIT = 65_536
_MARGIN = 2_000  # headroom under the limit, for the notes the cutting adds
_MIN_SQL = 400  # below this a revision's SQL is left out rather than shown as a stub
REPORT_VERSION = 1
_ICON = {"error": "❌", "warning": "⚠️", "info": "ℹ️", None: "✅"}


def ordered(findings: list[Finding]) -> list[Finding]:
    """Errors first, then warnings, then info; in check order within a severity."""
    return sorted(findings, key=lambda f: SEVERITIES.index(f.severity) if f.severity in SEVERITIES else 3)


def verdict(review: BranchReview, fail_on: str = "error") -> str:
    """``FAILED`` or ``passed``, for ``fail_on``."""
    return "FAILED" if review.failed(fail_on) else "passed"


# -- text -------------------------------------------------------------------------------------


def text_report(review: BranchReview, fail_on: str = "error") -> str:
    """The review for a terminal: each finding on its own lines, the checks, the verdict."""
    b = review.branch
    lines = [f"review {verdict(review, fail_on)} (fail on {fail_on}): {review.outcome()}",
             f"base {b.base} ({b.base_commit[:12]}), left at {b.merge_base[:12]}, HEAD {b.head_commit[:12]}; "
             f"scratch: {review.scratch}; stats: {_stats_line(review)}"]
    for rev in review.revisions:
        lock = f", lock ~{human_seconds(rev.locks.seconds)}" if rev.locks else ""
        lines.append(f"revision {rev.revision} ({rev.status}, {rev.path}): {rev.message}{lock}")
        if rev.destructive:
            lines.append("    destructive: " + "; ".join(
                f"{d['kind']}: {d['table']}{'.' + d['column'] if d['column'] else ''}"
                for d in rev.destructive))
    for f in ordered(review.findings):
        where = f" [{f.revision}]" if f.revision else ""
        lines.append(f"{f.severity}: {f.rule}{where}: {f.message}")
        if f.fix:
            lines.append(f"    fix: {f.fix}")
    for item in review.ignored:
        lines.append(f"ignored: {item.finding.rule} [{item.finding.revision}] (line {item.line}): "
                     f"{item.reason}")
    for check in review.checks:
        note = f" ({check.note})" if check.note and check.status != "passed" else ""
        lines.append(f"check {check.title}: {check.status}{note}")
    return "\n".join(lines) + "\n"


def _stats_line(review: BranchReview) -> str:
    stats = review.stats
    if stats is None:
        return "none (lock time not estimated)"
    when = f", exported {stats.exported_at}" if stats.exported_at else ""
    return f"{stats.source or 'given'} ({stats.dialect}, {len(stats.tables)} tables{when})"


# -- markdown ---------------------------------------------------------------------------------


def _cell(text: Any) -> str:
    """Text safe in a Markdown table cell: one line, pipes escaped, HTML escaped."""
    return html.escape(" ".join(str(text).split()), quote=False).replace("|", "\\|")


def _inline(text: str) -> str:
    return html.escape(" ".join(str(text).split()), quote=False)


def _finding_line(f: Finding) -> str:
    fix = f" **Fix:** {_inline(f.fix)}" if f.fix else ""
    return f"- {_ICON[f.severity]} **{f.severity}** `{f.rule}`: {_inline(f.message)}.{fix}"


def _fence(sql: str) -> str:
    """A fence longer than any run of backticks in ``sql``."""
    longest = max((len(m) for m in re.findall(r"`+", sql)), default=0)
    return "`" * max(3, longest + 1)


def _cut_sql(sql: str, budget: int) -> tuple[str, str]:
    """``sql`` cut at a line to fit ``budget`` characters, and a note saying what was left out."""
    if len(sql) <= budget:
        return sql, ""
    if budget < _MIN_SQL:
        return "", (f"_SQL left out ({len(sql):,} characters) to keep this comment under GitHub's "
                    "limit: see the job's log or `--format json`._")
    kept = sql[:budget].rsplit("\n", 1)[0]
    left = sql[len(kept):]
    return kept + "\n", (f"_SQL cut: {left.count(chr(10)):,} more line(s), {len(left):,} characters: "
                         "see the job's log or `--format json`._")


def _revision_block(rev: ReviewedRevision, review: BranchReview, sql_budget: int) -> str:
    findings = ordered([f for f in review.findings if f.revision == rev.revision])
    ignored = [i for i in review.ignored if i.finding.revision == rev.revision]
    counts = count_by_severity(findings)
    state = ", ".join(f"{n} {s}{'s' if n > 1 and s != 'info' else ''}" for s, n in counts.items() if n) or "no findings"
    summary = (f"{_ICON[worst(findings)]} <code>{html.escape(rev.revision)}</code> "
               f"{html.escape(rev.message or rev.path, quote=False)} — {html.escape(state, quote=False)}")
    parts = [f"<details><summary>{summary}</summary>", "",
             f"`{rev.path}` ({rev.status}, down_revision {', '.join(rev.down) or 'base'}"
             f"{', post-deploy' if rev.post_deploy else ''})", ""]
    parts += [_finding_line(f) for f in findings]
    if ignored:
        parts += ["", "**Ignored** (inline, with their reasons):"]
        parts += [f"- `{i.finding.rule}` (line {i.line}): {_inline(i.reason)} — "
                  f"silenced: {_inline(i.finding.message)}" for i in ignored]
    if rev.locks and rev.locks.statements:
        parts += ["", f"**Estimated lock time:** {human_seconds(rev.locks.seconds)} "
                      f"(threshold {human_seconds(rev.locks.threshold_s)})"]
    if rev.destructive:
        parts += ["", "**Destructive:** " + "; ".join(
            _inline(f"{d['kind']}: {d['table']}{'.' + d['column'] if d['column'] else ''}")
            for d in rev.destructive)]
    sql = rev.sql or ""
    shown, note = _cut_sql(sql, sql_budget)
    parts += ["", f"SQL ({_inline(rev.sql_source or 'not rendered')}):" if sql or rev.sql_source else ""]
    if shown:
        fence = _fence(shown)
        parts += ["", f"{fence}sql", shown.rstrip("\n"), fence]
    if note:
        parts += ["", note]
    parts += ["", "</details>", ""]
    return "\n".join(parts)


def markdown_report(review: BranchReview, fail_on: str = "error", limit: int = MARKDOWN_LIMIT) -> str:
    """The review as a PR comment under ``limit`` characters: summary, branch checks, revisions."""
    b = review.branch
    counts = count_by_severity(review.findings)
    head = [f"## {_ICON['error'] if review.failed(fail_on) else _ICON[None]} Migration review "
            f"{verdict(review, fail_on)}: {len(review.revisions)} revision(s) since `{_cell(b.base)}`", "",
            f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info, "
            f"{len(review.ignored)} ignored (fails on {fail_on}). Base `{b.base_commit[:12]}`, HEAD "
            f"`{b.head_commit[:12]}`. Scratch: {_inline(review.scratch)}. Stats: {_inline(_stats_line(review))}. "
            f"Lock-time thresholds: {human_seconds(review.model.regular_s)} regular, "
            f"{human_seconds(review.model.post_deploy_s)} post-deploy.", ""]
    if review.revisions:
        head += ["| revision | message | status | SQL | est. lock | errors | warnings | ignored |",
                 "|---|---|---|---|---|---|---|---|"]
        for rev in review.revisions:
            mine = count_by_severity(f for f in review.findings if f.revision == rev.revision)
            lock = human_seconds(rev.locks.seconds) if rev.locks else "—"
            ignored = sum(1 for i in review.ignored if i.finding.revision == rev.revision)
            head.append(f"| `{_cell(rev.revision)}` | {_cell(rev.message)} | {rev.status} | "
                        f"{_cell(rev.sql_source or 'none')} | {lock} | {mine['error']} | "
                        f"{mine['warning']} | {ignored} |")
        head.append("")
    head += ["### Checks", "", "| check | result | note |", "|---|---|---|"]
    head += [f"| {_cell(c.title)} | {_ICON[worst(c.findings)] if c.ran else '⏭️'} {c.status} | "
             f"{_cell(c.note)} |" for c in review.checks if c.revision is None or c.status != "passed"]
    head.append("")
    branch_wide = [f for f in review.findings if f.revision is None]
    if branch_wide:
        head += ["### Branch findings", "", *(_finding_line(f) for f in ordered(branch_wide)), ""]
    if review.revisions:
        head += ["### Revisions", ""]
    top = "\n".join(head)
    blocks = [_revision_block(rev, review, 0) for rev in review.revisions]
    room = limit - _MARGIN - len(top) - sum(len(b) for b in blocks)
    sized = sorted(review.revisions, key=lambda r: len(r.sql or ""))
    budgets: dict[str, int] = {}
    for left, rev in enumerate(sized):  # smallest first: what a small one leaves goes to the others
        share = max(room, 0) // (len(sized) - left)
        budgets[rev.revision] = min(len(rev.sql or ""), share)
        room -= budgets[rev.revision] + 200 if budgets[rev.revision] else 0
    body = "\n".join(_revision_block(rev, review, budgets.get(rev.revision, 0)) for rev in review.revisions)
    text = top + "\n" + body
    if len(text) >= limit:  # findings alone over the limit: say so rather than post a broken comment
        cut = text[: limit - _MARGIN].rsplit("\n<details>", 1)[0]
        text = cut + (f"\n\n_The rest is left out to stay under {limit:,} characters: see the job's "
                      "log or `--format json`._\n")
    return text


def checks_markdown(checks: list[CheckResult]) -> str:
    """Some checks as Markdown, for a runbook step: each one's result, then its findings."""
    lines = []
    for check in checks:
        note = f" ({_inline(check.note)})" if check.note and check.status != "passed" else ""
        lines.append(f"- {_ICON[worst(check.findings)] if check.ran else '⏭️'} **{_inline(check.title)}**: "
                     f"{check.status}{note}")
        lines += ["  " + _finding_line(f) for f in ordered(check.findings)]
    return "\n".join(lines) or "Nothing to check."


# -- json -------------------------------------------------------------------------------------


def _finding_json(f: Finding) -> dict[str, Any]:
    return {"check": f.check, "rule": f.rule, "severity": f.severity, "revision": f.revision,
            "message": f.message, "fix": f.fix}


def json_report(review: BranchReview, fail_on: str = "error") -> str:
    """The whole review as JSON (every finding, check, ignore and each revision's full SQL)."""
    b = review.branch
    data = {
        "version": REPORT_VERSION, "verdict": verdict(review, fail_on), "fail_on": fail_on,
        "outcome": review.outcome(), "base": b.base, "base_commit": b.base_commit,
        "merge_base": b.merge_base, "head_commit": b.head_commit, "scratch": review.scratch,
        "stats": review.stats.source if review.stats else None,
        "thresholds_s": {"regular": review.model.regular_s, "post_deploy": review.model.post_deploy_s},
        "counts": count_by_severity(review.findings),
        "revisions": [{
            "revision": r.revision, "path": r.path, "status": r.status, "message": r.message,
            "down_revision": list(r.down), "post_deploy": r.post_deploy, "sql": r.sql,
            "sql_source": r.sql_source, "destructive": r.destructive,
            "lock_seconds": r.locks.seconds if r.locks else None,
            "lock_threshold_s": r.locks.threshold_s if r.locks else None,
            "lock_statements": [{"kind": e.kind, "table": e.table, "seconds": e.seconds, "basis": e.basis}
                                for e in (r.locks.statements if r.locks else ())],
        } for r in review.revisions],
        "checks": [{"name": c.name, "revision": c.revision, "status": c.status, "note": c.note,
                    "seconds": round(c.seconds, 3), "findings": [_finding_json(f) for f in c.findings]}
                   for c in review.checks],
        "findings": [_finding_json(f) for f in review.findings],
        "ignored": [{**_finding_json(i.finding), "reason": i.reason, "line": i.line}
                    for i in review.ignored],
    }
    return json.dumps(data, indent=1) + "\n"


# -- junit ------------------------------------------------------------------------------------


def junit_report(review: BranchReview, fail_on: str = "error") -> str:
    """JUnit XML: one test case per check; a failure for findings at or above ``fail_on``."""
    suite = ET.Element("testsuite", name="softbee-runbook review", tests=str(len(review.checks)))
    failures = errors = skips = 0
    for check in review.checks:
        case = ET.SubElement(suite, "testcase", classname=f"migrations.review.{check.name.replace(' ', '_')}",
                             name=check.title, time=f"{check.seconds:.3f}")
        failing = [f for f in check.findings if f.at_least(fail_on)]
        if check.raised:
            errors += 1
            ET.SubElement(case, "error", message=check.findings[0].message if check.findings else check.note,
                          type="check-failed").text = _details(check.findings)
        elif not check.ran:
            skips += 1
            ET.SubElement(case, "skipped", message=check.note)
        elif failing:
            failures += 1
            ET.SubElement(case, "failure", message=f"{failing[0].rule}: {failing[0].message}",
                          type=failing[0].rule).text = _details(check.findings)
        elif check.findings:
            ET.SubElement(case, "system-out").text = _details(check.findings)
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skips))
    root = ET.Element("testsuites", name="softbee-runbook review", tests=str(len(review.checks)),
                      failures=str(failures), errors=str(errors), skipped=str(skips))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _details(findings: list[Finding]) -> str:
    return "\n".join(f"{f.severity}: {f.rule}: {f.message}" + (f"\n  fix: {f.fix}" if f.fix else "")
                     for f in findings)


def render(review: BranchReview, form: str, fail_on: str = "error") -> str:
    """The review in ``form``: text, markdown or json."""
    return {"text": text_report, "markdown": markdown_report, "json": json_report}[form](review, fail_on)
