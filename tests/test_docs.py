"""The README and docs/ pages: every relative link resolves, every runbook has its page.

A link resolves when its file exists and, when it names an ``#anchor``, the target has a
heading with that GitHub-style slug (or an element with that ``id``/``name``). Links inside
code (fenced blocks, inline backticks) are not links and are not checked.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from softbee.runbook.run.catalog import list_runbooks
from tests.helpers import REPO_ROOT

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
_INLINE_CODE = re.compile(r"`+[^`\n]*`+")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]\n]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.M)
_HTML_ID = re.compile(r"<[^>]+\b(?:id|name)=\"([^\"]+)\"")


def doc_pages(root: Path) -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def _prose(text: str) -> str:
    """The text without code: fenced blocks and inline code spans removed."""
    return _INLINE_CODE.sub("", _FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lower-cased, punctuation out, spaces to dashes."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor a link can name in ``page``: its headings' slugs (numbered when repeated)."""
    text = page.read_text(encoding="utf-8")
    found: set[str] = set(_HTML_ID.findall(text))
    seen: dict[str, int] = {}
    for heading in _HEADING.findall(_FENCE.sub("", text)):
        base = slug(heading)
        count = seen.get(base, 0)
        found.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return found


def broken_links(page: Path, root: Path) -> list[str]:
    """Each relative link of ``page`` whose file or anchor is missing, with the reason."""
    text = _prose(page.read_text(encoding="utf-8"))
    broken = []
    for target in [*_LINK.findall(text), *_REFERENCE.findall(text)]:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
            continue  # http:, https:, mailto:... not relative
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        shown = resolved.relative_to(root) if resolved.is_relative_to(root) else resolved
        if not resolved.exists():
            broken.append(f"{target}: no file {shown}")
        elif anchor and resolved.suffix == ".md" and anchor.lower() not in anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {shown}")
    return broken


@pytest.mark.parametrize("page", doc_pages(REPO_ROOT), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page, REPO_ROOT) == []


def test_a_missing_file_or_heading_is_reported(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# Guide\n\n## Alembic's own `autocommit_block`\n")
    (tmp_path / "README.md").write_text(
        "[ok](docs/guide.md#alembics-own-autocommit_block) [top](#readme) [web](https://x.org/y)\n"
        "[gone](docs/gone.md) [no heading](docs/guide.md#nowhere) `[code](docs/code.md)`\n"
        "[a link's text over\ntwo lines](docs/split.md)\n"
        "\n# Readme\n\n```\n[fenced](docs/fenced.md)\n```\n")

    assert broken_links(tmp_path / "README.md", tmp_path) == [
        "docs/gone.md: no file docs/gone.md",
        "docs/guide.md#nowhere: no heading #nowhere in docs/guide.md",
        "docs/split.md: no file docs/split.md",
    ]


@pytest.mark.parametrize(("heading", "anchor"), [
    ("Fleets (issue 11)", "fleets-issue-11"),
    ("Alembic's own `autocommit_block` is an online phase too",
     "alembics-own-autocommit_block-is-an-online-phase-too"),
    ("Set-up: two commands", "set-up-two-commands"),
    ("What a run costs (issue 11, item 4)", "what-a-run-costs-issue-11-item-4"),
])
def test_anchors_are_github_slugs(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_every_runbook_has_a_page_naming_each_of_its_parameters() -> None:
    """A parameter added to a notebook without a word in its page fails here."""
    missing = []
    for runbook in list_runbooks(REPO_ROOT / "runbooks"):
        page = REPO_ROOT / "docs" / "runbooks" / f"{runbook.name}.md"
        if not page.exists():
            missing.append(f"{runbook.name}: no docs/runbooks/{runbook.name}.md")
            continue
        text = page.read_text(encoding="utf-8")
        missing += [f"{runbook.name}: `{p.name}` not in {page.name}"
                    for p in runbook.parameters if f"`{p.name}`" not in text]
    assert missing == []
