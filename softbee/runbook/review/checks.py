"""A review's finding, and a check that degrades to one instead of stopping the review.

Each check of a review runs on its own (:func:`run_check`): one that raises becomes a
finding naming its cause (:func:`cause_of`), and the rest of the review goes on.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pandas as pd
import sqlalchemy as sa

from softbee.runbook.errors import first_line
from softbee.urls import redact_text

FINDING_COLUMNS = ["severity", "problem", "fix", "blocks_plan"]
T = TypeVar("T")


@dataclass(frozen=True)
class Finding:
    """One thing wrong with the database's recorded migration state, and what fixes it.

    ``severity`` is ``error`` when ``upgrade_downgrade`` would refuse or fail,
    ``info`` when the state is merely worth knowing (a new, empty database).
    ``blocks_plan``: no migration can start from this state, whatever the target.
    """

    severity: str
    problem: str
    fix: str
    blocks_plan: bool = False


def findings_frame(findings: list[Finding]) -> pd.DataFrame:
    """The findings as a table: severity, problem, fix, and whether it rules out a plan."""
    return pd.DataFrame([vars(f) for f in findings], columns=FINDING_COLUMNS)


def findings_markdown(findings: list[Finding]) -> str:
    """The findings as a Markdown list, each problem with its fix in full (a table cuts them)."""
    if not findings:
        return "The recorded revision is in the scripts and the history has one head."
    return "\n".join(
        f"- **{f.severity}**: {html.escape(f.problem)}. **Fix:** {html.escape(f.fix)}."
        for f in findings
    )


def blocks_migration(findings: list[Finding]) -> bool:
    """True when a finding would make ``upgrade_downgrade`` refuse or fail."""
    return any(f.severity == "error" for f in findings)


def run_check(
    what: str, check: Callable[[], T], metadata: Any = None
) -> tuple[T | None, Finding | None]:
    """``check()``'s result, or None and a finding "``what``: <cause>" when it raises.

    ``metadata`` (the models, or a callable giving them) lets the cause name the model
    columns it is about (an unnamed PostgreSQL Enum).
    """
    try:
        return check(), None
    except Exception as exc:  # noqa: BLE001 - one check's failure is a finding, the review goes on
        cause = cause_of(exc, metadata)
        fix = ("give each Enum a name in the models, as the migrations do "
               "(db.Enum(..., name='...'))" if "Enum type requires a name" in cause
               else "fix that cause to see this check; the rest of the review ran")
        return None, Finding("warning", f"{what}: {cause}", fix)


def cause_of(exc: BaseException, metadata: Any = None) -> str:
    """An exception as one line naming its cause (for an unnamed Enum, the model columns)."""
    text = redact_text(first_line(exc)).strip().rstrip(".") or type(exc).__name__
    where = re.match(r"\(in table '([^']+)', column '([^']+)'\): (.*)", text)
    columns = [f"{where.group(1)}.{where.group(2)}"] if where else []
    if where:
        text = where.group(3).strip().rstrip(".")
    if "Enum type requires a name" in text:
        try:
            columns = unnamed_enum_columns(metadata() if callable(metadata) else metadata) or columns
        except Exception:  # noqa: BLE001 - the cause is named without the model's columns then
            pass
    return text + (f" ({', '.join(columns)})" if columns else "")


def unnamed_enum_columns(metadata: Any) -> list[str]:
    """``table.column`` of each native Enum without a name in ``metadata`` (one MetaData or several)."""
    collections = metadata if isinstance(metadata, (list, tuple)) else [metadata]
    found: list[str] = []
    for collection in collections:
        for table in getattr(collection, "sorted_tables", []):
            for column in table.columns:
                kind = column.type
                if isinstance(kind, sa.Enum) and kind.name is None and kind.native_enum:
                    found.append(f"{table.name}.{column.name}")
    return found
