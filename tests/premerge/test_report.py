"""The review's reports: a Markdown comment under GitHub's limit, JSON, JUnit; checks on their own."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

from softbee.runbook.premerge.branch import Branch
from softbee.runbook.premerge.branch_review import BranchReview
from softbee.runbook.premerge.checks import CheckResult, Finding, Ignored, run_check, skipped
from softbee.runbook.premerge.report import (
    MARKDOWN_LIMIT,
    json_report,
    junit_report,
    markdown_report,
    text_report,
)
from softbee.runbook.premerge.revision_checks import ReviewedRevision
from tests.premerge.support import assert_renders

BRANCH = Branch(Path("/repo"), "origin/main", "b" * 40, "c" * 40, "d" * 40, "migrations/versions", ())


def review_of(revisions: int, findings_each: int, sql_lines: int) -> BranchReview:
    revs, checks = [], [CheckResult("history"), skipped("round trip", None, "several heads")]
    for n in range(revisions):
        rev = f"{n:012x}"
        sql = "".join(f"UPDATE hives SET hive_type = 'type {i} | `x`' WHERE id = {i};\n"
                      for i in range(sql_lines))
        revs.append(ReviewedRevision(rev, f"migrations/versions/{rev}.py", "added",
                                     f"Relabel hives | step {n}", ("base",), "", sql=sql,
                                     sql_source="offline"))
        checks.append(CheckResult("lint", rev, [Finding("lint", "full-table-update", "warning",
                                                        f"updates <hives> {i} " + "x" * 200, "batch it",
                                                        rev) for i in range(findings_each)]))
    checks.append(run_check("models", None, lambda: 1 / 0))
    ignored = [Ignored(Finding("lint", "drop-column", "error", "drops x", "", "000000000000"),
                       "nobody reads it", 3)]
    return BranchReview(BRANCH, revs, checks, ignored)


def test_a_check_that_raises_is_a_finding_and_the_review_goes_on():
    result = run_check("models", None, lambda: 1 / 0)

    assert (result.status, result.ran, result.raised) == ("could not run", False, True)
    [finding] = result.findings
    assert finding.severity == "error" and finding.rule == "check-failed"
    assert finding.message == "check models could not run: division by zero"


def test_a_small_review_shows_every_sql_and_renders():
    text = markdown_report(review_of(3, 2, 5))

    assert text.count("```sql") == 3 and "SQL cut" not in text
    assert "nobody reads it" in text and "`drop-column`" in text
    assert "⏭️ skipped" in text and "could not run" in text
    assert_renders(text)


def test_thirty_revisions_of_long_sql_are_cut_to_stay_under_the_limit():
    text = markdown_report(review_of(30, 3, 400))

    assert len(text) < MARKDOWN_LIMIT
    assert text.count("<details>") == 30 and ("SQL cut" in text or "SQL left out" in text)
    assert_renders(text)


def test_findings_beyond_the_limit_end_the_comment_with_a_note_not_a_broken_page():
    text = markdown_report(review_of(30, 40, 10))

    assert len(text) < MARKDOWN_LIMIT
    assert text.rstrip().endswith("`--format json`._")
    assert_renders(text)


def test_json_carries_everything_and_junit_has_one_case_per_check():
    review = review_of(2, 1, 3)

    data = json.loads(json_report(review))
    root = ET.fromstring(junit_report(review).split("\n", 1)[1])

    assert data["verdict"] == "FAILED" and data["counts"] == {"error": 1, "warning": 2, "info": 0}
    assert data["ignored"][0]["reason"] == "nobody reads it"
    assert [c["status"] for c in data["checks"]] == ["passed", "skipped", "failed", "failed",
                                                     "could not run"]
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == len(review.checks) == int(root.get("tests"))
    assert [c[0].tag if len(c) else "pass" for c in cases] == [
        "pass", "skipped", "system-out", "system-out", "error"]
    assert root.get("errors") == "1" and root.get("skipped") == "1" and root.get("failures") == "0"
    warned = ET.fromstring(junit_report(review, fail_on="warning").split("\n", 1)[1])
    assert warned.get("failures") == "2"


def test_fail_on_warning_fails_a_review_with_only_warnings():
    review = BranchReview(BRANCH, [], [CheckResult("history", None, [
        Finding("history", "merged-revision-comment-edit", "warning", "comments changed")])])

    assert not review.failed("error") and review.failed("warning")
    assert text_report(review, "warning").startswith("review FAILED (fail on warning)")
