"""For the review's tests: a git repository of a Soft-Bee copy with branches, and Markdown that renders.

The copy is the Soft-Bee migrations and a small app package, ``beeapp``, wrapping
``softbee.create_app`` as a project of its own would; a branch may add models to it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

from tests.helpers import HUNG_AFTER_S, MIGRATIONS, REPO_ROOT

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
APP = "beeapp:create_app"
VERSIONS = "migrations/versions"
BEEAPP = '''"""The Soft-Bee app, as a project of its own wraps it."""
from softbee import create_app as _create_app


def create_app():
    return _create_app()
'''
HIVE_NOTE_MODEL = '''

from softbee.db import db


class HiveNote(db.Model):
    """A beekeeper's remark on a hive."""

    __tablename__ = "hive_notes"
    id = db.Column(db.Integer, primary_key=True)
    body = db.Column(db.Text)
'''


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo``; its stdout."""
    return subprocess.run([*GIT, *args], cwd=repo, check=True, capture_output=True, text=True,
                          timeout=60).stdout


def make_repo(root: Path) -> Path:
    """A repository in ``root``: Soft-Bee's migrations and ``beeapp``, committed on ``main``."""
    root.mkdir(parents=True)
    shutil.copytree(MIGRATIONS, root / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "beeapp").mkdir()
    (root / "beeapp" / "__init__.py").write_text(BEEAPP, encoding="utf-8")
    (root / ".gitignore").write_text("__pycache__/\n*.pyc\ninstance/\n", encoding="utf-8")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "Soft-Bee at its head")
    return root


def branch(repo: Path, name: str, files: dict[str, str | None], base: str = "main") -> None:
    """Branch ``name`` off ``base`` with ``files`` written (None: deleted), committed; left checked out."""
    git(repo, "checkout", "-q", "-b", name, base)
    for path, text in files.items():
        target = repo / path
        if text is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"branch {name}")


def revision(rev: str, down: str | None, upgrade: str, downgrade: str = "pass",
             message: str = "Change something on the hives table", comments: str = "") -> tuple[str, str]:
    """(path, text) of a revision file; ``upgrade``/``downgrade`` are function bodies (indented lines)."""
    body = "\n".join("    " + line for line in upgrade.splitlines())
    back = "\n".join("    " + line for line in downgrade.splitlines())
    text = (f'"""{message}\n\nRevision ID: {rev}\nRevises: {down}\n"""\n{comments}'
            "import sqlalchemy as sa\nfrom alembic import op\n\n"
            f"revision = {rev!r}\ndown_revision = {down!r}\nbranch_labels = None\ndepends_on = None\n\n\n"
            f"def upgrade():\n{body}\n\n\ndef downgrade():\n{back}\n")
    slug = "_".join(message.lower().split()[:4])
    return f"{VERSIONS}/{rev}_{slug}.py", text


def review_cli(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``softbee-runbook review --base main --app beeapp:create_app ...`` in ``repo``, as CI runs it."""
    environ = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "FLASK_ENV")}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), environ.get("PYTHONPATH")]))
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "softbee.runbook", "review", "--base", "main", "--app", APP, *args],
        cwd=repo, env=environ, capture_output=True, text=True, timeout=HUNG_AFTER_S,
        check=False)


class _Tags(HTMLParser):
    """Counts open and close tags of an HTML page; a close without its open is an error."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.seen: dict[str, int] = {}

    def handle_starttag(self, tag: str, _attrs: object) -> None:
        self.seen[tag] = self.seen.get(tag, 0) + 1
        if tag not in ("br", "hr", "img", "input"):
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()


def assert_renders(markdown: str) -> dict[str, int]:
    """The comment is well-formed Markdown: rendered by mistune to balanced HTML, tables regular."""
    import mistune

    for table in re.findall(r"(?m)(?:^\|.*\|\n)+", markdown):
        widths = {len(re.findall(r"(?<!\\)\|", row)) for row in table.splitlines()}
        assert len(widths) == 1, f"a table's rows have different numbers of cells:\n{table}"
    assert markdown.count("<details>") == markdown.count("</details>")
    page = mistune.create_markdown(plugins=["table"], escape=False)(markdown)
    tags = _Tags()
    tags.feed(page)
    assert tags.problems == [] and tags.stack == [], (tags.problems, tags.stack)
    return tags.seen
