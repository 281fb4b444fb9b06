"""A run's facts: recorded by the runbook inside the kernel, read back from the executed notebook.

A runbook calls :func:`record` as it learns things (the database at preflight,
the revision before, the row counts after...). Each call displays a raw mime
bundle of type :data:`MIME_TYPE`, so the facts are stored in the notebook's
outputs, with an empty text form: they are for the archive, not for the reader, so
JupyterLab shows nothing and the archived page leaves them out
(:func:`softbee.runbook.archive.render.render_html`); :func:`read_summary` merges them
in cell order. Facts recorded before
a failure therefore survive it, and reading an archived notebook later gives the
same facts as the archive index.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from softbee.runbook.util.sqltext import one_line
from softbee.urls import redact_text

MIME_TYPE = "application/vnd.softbee.runbook+json"

#: The facts the runbooks record; every one is optional.
FACT_KEYS = (
    "runbook",
    "database",  # {"dialect", "host", "port", "database"}
    "environment",
    "revision_before",
    "revision_after",
    "row_counts",  # [{"table", "before", "after", "delta"}, ...]
    "outcome",  # one sentence
)

def is_facts(output: Mapping[str, Any]) -> bool:
    """Whether a cell output is a :func:`record` of facts (shown to nobody)."""
    return MIME_TYPE in (output.get("data") or {})


def record(**facts: Any) -> None:
    """Store ``facts`` in the executing notebook's outputs (URL passwords masked)."""
    from IPython.display import display

    data = _jsonable(facts)
    display({MIME_TYPE: data, "text/plain": ""}, raw=True)


def read_summary(nb: Mapping[str, Any]) -> dict[str, Any]:
    """Merge every recorded fact in ``nb`` in cell order: later keys override earlier ones."""
    facts: dict[str, Any] = {}
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) or []:
            if output.get("output_type") not in ("display_data", "execute_result"):
                continue
            data = (output.get("data") or {}).get(MIME_TYPE)
            if isinstance(data, str):  # nbformat 3 stored JSON bundles as text
                try:
                    data = json.loads(data)
                except ValueError:
                    continue
            if isinstance(data, Mapping):
                facts.update(_plain_dict(data))
    return facts


def _jsonable(facts: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON round trip (unknown objects become their ``str``), URL passwords masked."""
    text = json.dumps(dict(facts), default=str)
    return _mask(json.loads(text))


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [_mask(item) for item in value]
    if isinstance(value, dict):
        return {key: _mask(item) for key, item in value.items()}
    return value


def _plain_dict(value: Mapping[str, Any]) -> dict[str, Any]:
    """Turn nbformat's NotebookNode (a dict subclass) back into plain dicts and lists."""
    return json.loads(json.dumps(value))


def first_words(facts: Mapping[str, Any], error: Mapping[str, Any] | None = None) -> list[str]:
    """What a run's page says first, one line each: outcome, revisions, round trip, what it met."""
    extra = {k: v for k, v in facts.items() if k not in ("row_counts",)}
    if error:
        step = f" at step {error['step']!r}" if error.get("step") else ""
        lines = [f"failed{step}: {error.get('type')}: {one_line(error.get('message'))}"]
    else:
        lines = [f"passed: {one_line(extra.get('outcome') or 'done')}"]
    before, after = extra.get("revision_before"), extra.get("revision_after")
    if before is not None or after is not None:
        lines.append(f"revision: {before or '(none)'} -> {after or '(none)'}")
    if extra.get("round_trip"):
        lines.append(f"round trip: {one_line(extra['round_trip'])}")
    lines += [f"in progress: {one_line(line)}" for line in extra.get("in_progress") or []]
    lines += [f"finding: {one_line(problem)}" for problem in extra.get("state_problems") or []]
    lines += [f"changed outside the runbooks: {one_line(line)}"
              for line in extra.get("moved_outside") or []]
    return lines
