"""Review a branch's migrations before it is merged: every check on its own, then one verdict.

:class:`BranchReviewer` holds what the checks share (the branch read from git, the revision
files, the stats, the project on a scratch server) and runs one check per method, so the
``review`` runbook shows them step by step and the CLI (:func:`review_branch`) runs them
all. Each check goes through :func:`~softbee.runbook.premerge.checks.run_check`: one that
raises is a finding, the others still run. :meth:`BranchReviewer.finish` applies the inline
ignores and gives the :class:`BranchReview` the reports are written from.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from softbee.runbook.errors import ReviewError
from softbee.runbook.premerge import history
from softbee.runbook.premerge.binds import bind_sides
from softbee.runbook.premerge.binds import copies as bind_copies
from softbee.runbook.premerge.binds import merge as merge_binds
from softbee.runbook.premerge.binds import named as named_bind
from softbee.runbook.premerge.branch import Branch, files_at, read_branch
from softbee.runbook.premerge.checks import (
    FAIL_ON,
    CheckResult,
    Finding,
    Ignored,
    count_by_severity,
    fails,
    run_check,
    skipped,
)
from softbee.runbook.premerge.ignores import apply_ignores, parse_ignores
from softbee.runbook.premerge.locktime import LockModel, is_post_deploy
from softbee.runbook.premerge.revision_checks import (
    ReviewedRevision,
    lint_revisions,
    models_check,
    revision_lint,
    revision_locks,
    revision_sql,
    round_trip_check,
    superseded,
)
from softbee.runbook.premerge.stats import Stats, load_stats
from softbee.runbook.util.roots import find_project_root


@dataclass
class BranchReview:
    """What the review found: the branch, its revisions, every check, what was ignored and why."""

    branch: Branch
    revisions: list[ReviewedRevision]
    checks: list[CheckResult]
    ignored: list[Ignored] = field(default_factory=list)
    stats: Stats | None = None
    model: LockModel = field(default_factory=LockModel)
    scratch: str = ""

    @property
    def findings(self) -> list[Finding]:
        """Every finding that stands (ignored ones left out), in check order."""
        return [f for check in self.checks for f in check.findings]

    def failed(self, fail_on: str = "error") -> bool:
        """True when a finding is at or above ``fail_on``: the review's exit status 1."""
        return fails(self.findings, fail_on)

    def outcome(self) -> str:
        """One line: how many revisions, findings by severity, ignored, and the checks not made."""
        counts = count_by_severity(self.findings)
        statuses = [c.status for c in self.checks]
        not_run = [c.title for c in self.checks if not c.ran]
        line = (f"{len(self.revisions)} revision(s) since {self.branch.base}: "
                f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info, "
                f"{len(self.ignored)} ignored; {len(self.checks)} check(s): "
                f"{statuses.count('passed')} passed, {statuses.count('failed')} failed, "
                f"{statuses.count('could not run')} could not run, {statuses.count('skipped')} skipped")
        if not_run:
            shown = ", ".join(not_run[:5]) + (f" and {len(not_run) - 5} more" if len(not_run) > 5 else "")
            line += f" (not checked: {shown})"
        return line


class BranchReviewer:
    """One review in progress: call the ``check_*`` methods (any order after the history), then :meth:`finish`."""

    def __init__(self, base: str, *, app: str = "softbee:create_app", migrations_dir: str = "migrations",
                 database_url: str | None = None, stats_file: str | None = None,
                 model: LockModel | None = None, folder: Path | None = None) -> None:
        self.model = model or LockModel()
        self.stats = load_stats(stats_file) if stats_file else None
        root = find_project_root(migrations_dir) if folder is None else folder
        migrations = Path(migrations_dir) if Path(migrations_dir).is_absolute() else (
            (root or Path.cwd()) / migrations_dir)
        if not (migrations / "env.py").is_file():
            raise ReviewError(f"no Alembic migrations at {migrations} (env.py missing): run the "
                              "review from the project, or pass --migrations-dir")
        self.branch = read_branch(migrations, base, migrations / "versions")
        self.checks: list[CheckResult] = []
        self._app, self._migrations_dir, self._database_url = app, str(migrations), database_url
        self._project: Any = None
        self._sides: list[Any] = []  # one project per bind of a multi-database project
        self._bind_revisions: dict[str, list[ReviewedRevision]] = {}
        self._project_problem: str | None = None
        self._temporary: tempfile.TemporaryDirectory[str] | None = None
        self.revisions = self._read_revisions()

    # -- what the branch changes --------------------------------------------------------------

    def _now(self) -> dict[str, str]:
        folder = self.branch.root / self.branch.versions
        return {p.relative_to(self.branch.root).as_posix(): p.read_text(encoding="utf-8", errors="replace")
                for p in sorted(folder.rglob("*.py")) if "__pycache__" not in p.parts}

    def _read_revisions(self) -> list[ReviewedRevision]:
        self.now = self._now()
        revisions = []
        for change in self.branch.changes:
            if change.status == "D" or change.path not in self.now:
                continue
            text = self.now[change.path]
            parsed = history.parse_revision(change.path, text)
            revisions.append(ReviewedRevision(
                parsed.revision or change.path, change.path,
                "added" if change.status == "A" else "changed", parsed.message, parsed.down, text,
                parse_ignores(text), is_post_deploy(text)))
        return _in_history_order(revisions)

    def revisions_frame(self) -> Any:
        """The revisions the branch adds or changes, oldest first (for the runbook)."""
        import pandas as pd

        return pd.DataFrame(
            [{"revision": r.revision, "status": r.status, "down_revision": ", ".join(r.down) or "base",
              "message": r.message, "file": r.path, "post-deploy": r.post_deploy} for r in self.revisions],
            columns=["revision", "status", "down_revision", "message", "file", "post-deploy"])

    # -- the checks ---------------------------------------------------------------------------

    def _add(self, result: CheckResult) -> CheckResult:
        self.checks.append(result)
        return result

    def check_history(self) -> list[CheckResult]:
        """Edited merged revisions, then several heads or a revision not on the base's head."""
        root, branch = self.branch.root, self.branch
        edited = self._add(run_check("edited revisions", None, lambda: history.edited_findings(
            branch, files_at(root, branch.merge_base, branch.versions), self.now)))
        graph = self._add(run_check("history", None, lambda: history.history_findings(
            branch, files_at(root, branch.base_commit, branch.versions), self.now)))
        return [edited, graph]

    def project(self) -> Any:
        """The project loaded on the scratch server (a temporary SQLite file by default); None if it failed."""
        if self._project is None and self._project_problem is None:
            from softbee.runbook.project import load_project

            url = self._database_url
            if not url:
                self._temporary = tempfile.TemporaryDirectory(prefix="softbee-review-")
                url = f"sqlite:///{self._temporary.name}/review.sqlite3"
            result = self._add(run_check("project", None, lambda: self._load(load_project, url)))
            if not result.ran:
                self._project_problem = result.note
        return self._project

    def _load(self, load_project: Any, url: str) -> list[Finding]:
        project = load_project(self._app, self._migrations_dir, url)
        try:
            project.script()  # every revision file imports: a broken one is this check's finding
            # several databases: each bind reviewed on a scratch place of its own (premerge.binds)
            self._sides = bind_sides(project, url)
        except Exception:
            project.engine.dispose()
            raise
        self._project = project
        return []

    @property
    def scratch(self) -> str:
        """Where the scratch databases are made, without a password."""
        project = self._project
        if project is None:
            return "not loaded"
        return "a temporary SQLite file" if self._temporary else f"{project.dialect} at {project.safe_url}"

    def _needs_project(self, name: str, revision: str | None = None) -> Any:
        project = self.project()
        if project is None:
            self._add(skipped(name, revision, f"the project did not load ({self._project_problem})"))
        return project

    def check_revisions(self) -> list[CheckResult]:
        """Each revision's SQL (offline, else captured), then its lint and its lock time (per bind)."""
        project = self.project()
        if project is None:
            return [self._add(skipped(name, rev.revision, "the project did not load"))
                    for rev in self.revisions for name in ("sql", "lint")]
        if not self._sides:
            return [self._add(r) for r in self._revision_checks(project, self.revisions)]
        results = []
        for side in self._sides:  # each bind's upgrade_<bind>() on its own scratch place
            revisions = self._bind_revisions[side.bind] = bind_copies(self.revisions)
            results += [self._add(r) for r in named_bind(
                self._revision_checks(side, revisions), side.bind)]
        merge_binds(self.revisions, list(self._bind_revisions.items()))
        return results

    def _revision_checks(self, project: Any, revisions: list[ReviewedRevision]) -> list[CheckResult]:
        """SQL, lint and lock time of ``revisions`` on ``project`` (one bind's, or the one database's)."""
        from softbee.runbook.review.offline import review_dialect

        dialect = review_dialect(project)
        results = [run_check("sql", rev.revision, lambda rev=rev: revision_sql(
            project, rev, dialect), note="") for rev in revisions]
        for rev, result in zip(revisions, results, strict=True):
            result.note = rev.sql_source
        rendered = [rev for rev in revisions if rev.sql is not None]
        batch: dict[str, list[Finding]] = {}
        started = time.monotonic()
        together = run_check("lint", None, lambda: batch.update(
            lint_revisions(rendered, self.stats, dialect)))  # one squawk run for all of them
        share = (time.monotonic() - started) / max(len(rendered), 1)
        for rev in revisions:
            if rev.sql is None:
                results.append(skipped("lint", rev.revision, "no SQL to lint"))
            elif not together.raised:
                results.append(CheckResult("lint", rev.revision, batch[rev.revision], seconds=share))
            else:  # one revision's SQL broke the batch: each on its own, so the others are linted
                results.append(run_check("lint", rev.revision, lambda rev=rev:
                                         revision_lint(rev, self.stats, dialect)))
        for rev in rendered:
            if self.stats is None:
                results.append(skipped("lock time", rev.revision,
                                       "no --stats file: the sizes are unknown"))
            else:
                results.append(run_check("lock time", rev.revision, lambda rev=rev:
                                         revision_locks(rev, self.stats, self.model)))
        return results

    def check_models(self) -> CheckResult:
        """Models against a scratch database at the branch's head: changes without a revision."""
        project = self._needs_project("models")
        if project is None:
            return self.checks[-1]
        if not self._sides:
            return self._add(run_check("models", None, lambda: models_check(project, self.revisions)))
        for side in self._sides:  # each bind's models (its __bind_key__) against its revisions
            revisions = self._bind_revisions.get(side.bind, self.revisions)
            result = self._add(named_bind([run_check("models", None, lambda side=side, revs=revisions:
                                                     models_check(side, revs))], side.bind)[0])
        return result

    def check_round_trip(self) -> CheckResult:
        """Up, down and up again over the branch's revisions on a scratch database."""
        project = self._needs_project("round trip")
        if project is None:
            return self.checks[-1]
        if not self.revisions:
            return self._add(skipped("round trip", None, "no revision added or changed"))
        if not self._sides:
            return self._add(self._round_trip(project))
        for side in self._sides:  # each bind up, down and up again on a scratch database of its own
            result = self._add(named_bind([self._round_trip(side)], side.bind)[0])
        return result

    def _round_trip(self, project: Any) -> CheckResult:
        """The round trip of the reviewed revisions on ``project`` (one bind's, or the one database's)."""
        verdict: list[str] = []

        def trip() -> list[Finding]:
            findings, said = round_trip_check(project, self.revisions)
            verdict.append(said)
            return findings

        result = run_check("round trip", None, trip)
        if verdict and verdict[0].startswith("not run"):
            result.ran, result.note = False, verdict[0]
        elif verdict:
            result.note = verdict[0]
        return result

    def finish(self) -> BranchReview:
        """Apply each revision's inline ignores and give the review's result."""
        ignored: list[Ignored] = []
        silenced = superseded([f for check in self.checks for f in check.findings])
        for rev in self.revisions:
            if not rev.ignores:
                continue
            mine = [f for check in self.checks for f in check.findings
                    if f.revision == rev.revision and id(f) not in silenced]
            _kept, gone, own = apply_ignores(rev.revision, rev.path, rev.ignores, mine)
            ignored += gone
            silenced |= {id(i.finding) for i in gone}
            self.checks.append(CheckResult("ignores", rev.revision, own))
        for check in self.checks:
            check.findings = [f for f in check.findings if id(f) not in silenced]
        return BranchReview(self.branch, self.revisions, self.checks, ignored, self.stats,
                            self.model, self.scratch)

    def close(self) -> None:
        """Dispose of the project's engine and the temporary scratch folder."""
        for side in self._sides:
            side.engine.dispose()
        if self._project is not None:
            self._project.engine.dispose()
        if self._temporary is not None:
            self._temporary.cleanup()
            self._temporary = None

    def __enter__(self) -> BranchReviewer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _in_history_order(revisions: list[ReviewedRevision]) -> list[ReviewedRevision]:
    """Oldest first: a revision after the ones it builds on (file order among the rest)."""
    by_id = {r.revision: r for r in revisions}
    done: list[ReviewedRevision] = []
    seen: set[str] = set()

    def visit(rev: ReviewedRevision, path: tuple[str, ...] = ()) -> None:
        if rev.revision in seen or rev.revision in path:
            return
        for down in rev.down:
            if down in by_id:
                visit(by_id[down], (*path, rev.revision))
        seen.add(rev.revision)
        done.append(rev)

    for rev in revisions:
        visit(rev)
    return done


def open_review(base: str | None, *, app: str = "softbee:create_app", migrations_dir: str = "migrations",
                database_url: str | None = None, stats_file: str | None = None, fail_on: str = "error",
                max_lock_minutes: float = 3.0, max_post_deploy_lock_minutes: float = 10.0) -> BranchReviewer:
    """A :class:`BranchReviewer` from the review runbook's parameters, each checked first."""
    from softbee.runbook.errors import ParameterError

    if not base or not str(base).strip():
        raise ParameterError("base is required: the git reference the branch will be merged into, "
                             "e.g. base='origin/main'")
    if fail_on not in FAIL_ON:
        raise ParameterError(f"fail_on {fail_on!r} must be 'error' or 'warning'")
    for name, value in (("max_lock_minutes", max_lock_minutes),
                        ("max_post_deploy_lock_minutes", max_post_deploy_lock_minutes)):
        if not value > 0:
            raise ParameterError(f"{name} must be a positive number of minutes, not {value!r}")
    model = LockModel(regular_s=max_lock_minutes * 60, post_deploy_s=max_post_deploy_lock_minutes * 60)
    return BranchReviewer(str(base).strip(), app=app, migrations_dir=migrations_dir,
                          database_url=database_url, stats_file=stats_file, model=model)


def raise_if_failed(review: BranchReview, fail_on: str = "error") -> None:
    """Raise :class:`~softbee.runbook.errors.ReviewFailed` with the outcome when a finding is at or above ``fail_on``."""
    from softbee.runbook.errors import ReviewFailed

    if review.failed(fail_on):
        raise ReviewFailed(f"the review found problems at or above {fail_on}: {review.outcome()} "
                           "(see the findings above, each with its fix)")


def review_branch(base: str, *, app: str = "softbee:create_app", migrations_dir: str = "migrations",
                  database_url: str | None = None, stats_file: str | None = None,
                  model: LockModel | None = None) -> BranchReview:
    """Every check of the branch against ``base``; a :class:`ReviewError` only when it cannot start."""
    with BranchReviewer(base, app=app, migrations_dir=migrations_dir, database_url=database_url,
                        stats_file=stats_file, model=model) as reviewer:
        reviewer.check_history()
        reviewer.check_revisions()
        reviewer.check_models()
        reviewer.check_round_trip()
        return reviewer.finish()
