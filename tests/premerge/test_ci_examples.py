"""The CI examples parse as YAML, run a PostgreSQL service, call ``review`` as it exists, post the Markdown."""

from __future__ import annotations

import re
import shlex

import pytest
import yaml

from softbee.runbook.cli import build_parser
from tests.helpers import REPO_ROOT

CI = REPO_ROOT / "examples" / "ci"


def shell_lines(node: object) -> list[str]:
    """Every string under a ``run``/``script`` key of a CI file, as shell text."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("run", "script"):
                found += value if isinstance(value, list) else [value]
            else:
                found += shell_lines(value)
    elif isinstance(node, list):
        for item in node:
            found += shell_lines(item)
    return [str(text) for text in found]


def review_calls(text: str) -> list[list[str]]:
    """The arguments of each ``softbee-runbook`` call in a shell text (continuations joined)."""
    joined = text.replace("\\\n", " ")
    calls = []
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("softbee-runbook "):
            calls.append(shlex.split(line.split("||")[0])[1:])
    return calls


def services(config: dict) -> list[str]:
    if "jobs" in config:  # GitHub Actions
        return [s["image"] for job in config["jobs"].values() for s in job.get("services", {}).values()]
    return [s["name"] if isinstance(s, dict) else s for job in config.values() if isinstance(job, dict)
            for s in job.get("services", [])]


@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml"])
def test_the_ci_example_reviews_against_postgresql_and_posts_the_markdown(name):
    config = yaml.safe_load((CI / name).read_text(encoding="utf-8"))
    scripts = "\n".join(shell_lines(config))

    [call] = [c for text in shell_lines(config) for c in review_calls(text)]
    args = build_parser().parse_args(call)  # options the command really has

    assert args.command == "review" and args.format == "markdown" and args.output == "review.md"
    assert args.database_url.startswith("postgresql://") or "REVIEW_DATABASE_URL" in args.database_url
    assert args.junit and args.base.startswith("origin/")
    assert any(image.startswith("postgres") for image in services(config))
    assert re.search(r"gh pr comment .*--body-file review\.md|body@review\.md", scripts)
    assert "softbee-runbook review --base" in (CI / name).read_text()  # the two-line use, in the header
