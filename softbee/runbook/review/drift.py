"""Drift: how the live schema differs from the schema its recorded revision produces.

The database records a revision (``alembic_version``); :func:`~.expected.expected_schema`
builds what that revision's migrations produce (a scratch database, cached per migrations
tree and dialect). :func:`check_drift` compares the two and names every difference in one
line ("index ix_hives_apiary_id on hives missing", "column users.nickname not in any
revision", "column hives.name nullable: revision NOT NULL, database NULL"). What differs
harmlessly between a scratch copy and a live database is normalised first (names the server
gives unnamed constraints, spellings of types and defaults), so a freshly migrated database
has no drift. The models are not involved: models against migrations stay their own finding
(:func:`~.expected.model_drift`). A check that cannot run gives a :class:`Drift` whose
``error`` says why ("drift could not be checked: ..."); it never raises, except the gate
(:func:`drift_gate`), which refuses a drifted database on purpose. Many databases of one
project: :mod:`.drift_many`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from softbee.runbook.errors import DriftError
from softbee.runbook.project import Project
from softbee.runbook.review.expected import SKIPPED, SchemaSnapshot, expected_schema, reflect_schema
from softbee.runbook.review.state import current_revisions, version_table_opts
from softbee.runbook.util.sqltext import one_line
from softbee.urls import redact_text

if TYPE_CHECKING:  # pandas is imported where a DataFrame is made, when it is
    import pandas as pd

NOT_CHECKED = "drift could not be checked"
# Spellings one server gives a type and another (or another version) gives the same type.
_TYPE_ALIASES = {
    "CHARACTER VARYING": "VARCHAR", "INT": "INTEGER", "INT4": "INTEGER", "INT8": "BIGINT",
    "BOOL": "BOOLEAN", "TIMESTAMP WITHOUT TIME ZONE": "TIMESTAMP", "DOUBLE PRECISION": "DOUBLE",
    "FLOAT8": "DOUBLE", "TIME WITHOUT TIME ZONE": "TIME", "INT2": "SMALLINT",
}
_CAST = re.compile(r"::[a-z_ ]+(\[\])?(\(\d+\))?", re.IGNORECASE)


@dataclass(frozen=True)
class Drift:
    """The verdict on one database: the revision it was compared with and each difference."""

    revision: str | None  # the recorded revision the schema was compared with; None: base
    lines: tuple[str, ...] = ()
    error: str | None = None  # why drift could not be checked ("drift could not be checked: ...")
    skipped: tuple[str, ...] = field(default=(), compare=False)  # tables never compared

    @property
    def drifted(self) -> bool:
        """True when the schema differs from what its recorded revision produces."""
        return bool(self.lines)

    @property
    def checked(self) -> bool:
        """False when the check could not run (see ``error``)."""
        return self.error is None

    def message(self, limit: int = 5) -> str:
        """One line: no drift, N difference(s) (the first few named), or why it was not checked."""
        if self.error is not None:
            return self.error
        at = f"revision {self.revision}" if self.revision else "base"
        if not self.lines:
            return f"no drift: the schema is what {at} produces"
        shown = "; ".join(self.lines[:limit])
        more = f"; and {len(self.lines) - limit} more" if len(self.lines) > limit else ""
        return f"drift from {at} in {len(self.lines)} place(s): {shown}{more}"

    def frame(self) -> pd.DataFrame:
        """The differences as a one-column table."""
        import pandas as pd

        return pd.DataFrame({"drift": list(self.lines)}, columns=["drift"])

    def to_json(self) -> dict[str, Any]:
        """A plain dict for a run's facts: drifted when ``lines``, not checked when ``error``."""
        return {"revision": self.revision, "lines": list(self.lines), "error": self.error}


# -- comparing two snapshots ----------------------------------------------------------------


def drift_lines(live: SchemaSnapshot, expected: SchemaSnapshot) -> list[str]:
    """Each difference of ``live`` from ``expected``, normalised, one line each ([] when none)."""
    out: list[str] = []
    want_enums, got_enums = expected.enums, live.enums
    for name in sorted(set(want_enums) | set(got_enums)):
        _item(out, f"enum type {name}", "values", want_enums.get(name), got_enums.get(name))
    for table in sorted(set(live.tables) | set(expected.tables)):
        if table not in live.tables:
            out.append(f"table {table} missing")
            continue
        if table not in expected.tables:
            out.append(f"table {table} not in any revision")
            continue
        want, got = _normalised(expected.tables[table]), _normalised(live.tables[table])
        for item in sorted(set(want) | set(got)):
            if item.startswith("column "):
                _column(out, f"column {table}.{item[7:]}", want.get(item), got.get(item))
            else:
                _item(out, f"{item} on {table}", "", want.get(item), got.get(item))
    return out


def _item(out: list[str], what: str, attribute: str, want: str | None, got: str | None) -> None:
    if got is None and want is not None:
        out.append(f"{what} missing")
    elif want is None and got is not None:
        out.append(f"{what} not in any revision")
    elif want != got:
        label = f" {attribute}" if attribute else ""
        out.append(f"{what}{label}: revision {want or '(none)'}, database {got or '(none)'}")


def _column(out: list[str], what: str, want: str | None, got: str | None) -> None:
    if want is None or got is None:
        _item(out, what, "", want, got)
        return
    (want_type, want_null, want_default), (got_type, got_null, got_default) = (
        _column_parts(want), _column_parts(got))
    if want_type != got_type:
        out.append(f"{what} type: revision {want_type}, database {got_type}")
    if want_null != got_null:
        out.append(f"{what} nullable: revision {want_null}, database {got_null}")
    if want_default != got_default:
        out.append(f"{what} default: revision {want_default or 'none'}, "
                   f"database {got_default or 'none'}")


def _column_parts(text: str) -> tuple[str, str, str]:
    """``"VARCHAR(80) NOT NULL DEFAULT 'x'"`` -> ``("VARCHAR(80)", "NOT NULL", "'x'")``."""
    head, _, default = text.partition(" DEFAULT ")
    nullable = "NULL"
    if head.endswith(" NOT NULL"):
        head, nullable = head[: -len(" NOT NULL")], "NOT NULL"
    return _type(head), nullable, _default(default)


def _normalised(items: dict[str, str]) -> dict[str, str]:
    """A table's items with what differs harmlessly between two copies taken out."""
    out: dict[str, str] = {}
    for item, text in items.items():
        if item.startswith("check "):
            # Keyed by what it checks: an unnamed check's name is the server's choice.
            out[f"check ({_expression(text)})"] = ""
        elif item.startswith("unique "):
            out[item] = ""  # the name of an unnamed unique constraint is the server's choice
        elif item.startswith("foreign key "):
            out[item] = " ".join(text.split())
        else:
            out[item] = text
    return out


def _type(text: str) -> str:
    spelled = " ".join(text.upper().split())
    base, paren, rest = spelled.partition("(")
    base = _TYPE_ALIASES.get(base.strip(), base.strip())
    return f"{base}{paren}{rest}".replace(", ", ",")


def _default(text: str) -> str:
    value = " ".join(_CAST.sub("", text.strip()).split())
    while value.startswith("(") and value.endswith(")") and _balanced(value[1:-1]):
        value = value[1:-1].strip()
    return value.lower() if value.lower() in ("now()", "current_timestamp", "null") else value


def _expression(text: str) -> str:
    value = " ".join(_CAST.sub("", text).replace("(", " ( ").replace(")", " ) ").split())
    value = value.replace("( ", "(").replace(" )", ")")
    while value.startswith("(") and value.endswith(")") and _balanced(value[1:-1]):
        value = value[1:-1].strip()
    return value


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


# -- one database --------------------------------------------------------------------------


def skipped_tables(project: Project) -> set[str]:
    """Tables never compared: the version table, the runbooks' own (:data:`~.expected.SKIPPED`)."""
    return set(SKIPPED) | {str(version_table_opts(project)["version_table"])}


def check_drift(
    project: Project,
    connection: Connection | None = None,
    expected: Callable[[str | None], SchemaSnapshot] | None = None,
) -> Drift:
    """Compare the live schema with what its recorded revision produces; never raises.

    ``expected`` (revision -> snapshot) replaces :func:`expected_schema` (a fleet shares one).
    """
    try:
        if connection is None:
            with project.connect() as conn:
                try:
                    return _check(project, conn, expected)
                finally:
                    conn.rollback()
        return _check(project, connection, expected)
    except Exception as exc:  # noqa: BLE001 - a check that cannot run is a finding, not a crash
        return Drift(None, error=f"{NOT_CHECKED}: {_cause(exc)}")


def _check(project: Project, conn: Connection,
           expected: Callable[[str | None], SchemaSnapshot] | None) -> Drift:
    recorded = current_revisions(project, conn)
    if len(recorded) > 1:
        return Drift(None, error=f"{NOT_CHECKED}: the database records {len(recorded)} revisions "
                                 f"({', '.join(recorded)}); merge them first")
    revision = recorded[0] if recorded else None
    if revision is not None and _unknown(project, revision):
        return Drift(revision, error=f"{NOT_CHECKED}: the recorded revision {revision} is not in "
                                     "the scripts (see inspect_diff step 1)")
    build = expected or (lambda rev: expected_schema(project, rev))
    skip = skipped_tables(project)
    live = reflect_schema(conn, skip=skip)
    if revision is None and live.tables:  # a state problem (inspect_diff step 1), not drift
        return Drift(None, error=f"{NOT_CHECKED}: the database records no revision but has "
                                 f"{len(live.tables)} table(s); stamp the revision it is at "
                                 "(recover_stamp) first")
    want = build(revision)
    excluded = _excluded_by_env(project, set(live.tables) - set(want.tables))
    if excluded:
        live = SchemaSnapshot(live.source, live.dialect,
                              {t: i for t, i in live.tables.items() if t not in excluded},
                              live.enums)
    lines = drift_lines(live, want)
    moving = _in_progress(project, conn) if lines else []
    for other in moving:  # an online revision half-way: what it has done so far is not drift
        explained = set(lines) - set(drift_lines(live, build(other)))
        lines = [line for line in lines if line not in explained]
    return Drift(revision, tuple(lines), skipped=tuple(sorted(skip | excluded)))


def _in_progress(project: Project, conn: Connection) -> list[str | None]:
    """The revisions online phases are moving the database to (recorded, not yet finished)."""
    from softbee.runbook.online.phases import recorded_phases

    found: list[str | None] = []
    for record in recorded_phases(conn):
        if record.direction == "upgrade":
            found.append(record.revision)
        else:
            down = project.script().get_revision(record.revision).down_revision
            if down is None or isinstance(down, str):  # a merge's downgrade: left as drift
                found.append(down)
    return list(dict.fromkeys(found))


def _unknown(project: Project, revision: str) -> bool:
    try:
        return project.script().get_revision(revision) is None
    except Exception:  # noqa: BLE001 - Alembic raises for an unknown id
        return True


def _excluded_by_env(project: Project, tables: Iterable[str]) -> set[str]:
    """Tables the project's ``env.py`` keeps out of Alembic (``include_name``/``include_object``)."""
    args = project.configure_args
    include_name, include_object = args.get("include_name"), args.get("include_object")
    excluded: set[str] = set()
    for table in tables:
        try:
            if include_name is not None and not include_name(table, "table",
                                                             {"schema_name": None}):
                excluded.add(table)
            elif include_object is not None and not include_object(
                    sa.Table(table, sa.MetaData()), table, "table", True, None):
                excluded.add(table)
        except Exception:  # noqa: BLE001 - a filter that cannot judge a bare table keeps it
            continue
    return excluded


def _cause(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = one_line(str(orig if orig is not None else exc)) or type(exc).__name__
    return redact_text(f"{type(exc).__name__}: {text}" if not isinstance(exc, DriftError) else text)


def refuse_drift(drift: Drift, allow_drift: bool = False) -> Drift:
    """The pre-migration gate: ``drift`` back, or :class:`DriftError` when drifted and not allowed.

    A check that could not run lets the run go on (its ``error`` is shown and recorded).
    """
    if drift.drifted and not allow_drift:
        raise DriftError(
            f"the database has drifted from revision {drift.revision or 'base'} in "
            f"{len(drift.lines)} place(s) ({'; '.join(drift.lines[:3])}"
            f"{'; ...' if len(drift.lines) > 3 else ''}): put the schema back (or fix it and stamp "
            "with recover_stamp), or pass allow_drift=True to migrate it as it is",
            drift.lines)
    return drift


def drift_gate(project: Project, allow_drift: bool = False) -> Drift:
    """:func:`check_drift`, then :func:`refuse_drift`."""
    return refuse_drift(check_drift(project), allow_drift)


def fail_on_drift(drift: Drift) -> None:
    """For a nightly job: :class:`DriftError` when drifted or not checked (the run exits 1)."""
    if drift.error is not None:
        raise DriftError(f"{drift.error}: fix the cause and run check_drift again")
    if drift.drifted:
        raise DriftError(f"{drift.message(limit=3)}: fix the schema (by hand or with a revision) "
                         "and run check_drift again", drift.lines)


def drift_markdown(drift: Drift) -> str:
    """The verdict as one short markdown line, for a runbook."""
    if drift.checked and not drift.drifted:
        return f"No drift from {f'revision {drift.revision}' if drift.revision else 'base'}."
    return f"**Drift:** {drift.message(limit=3)}"


def drift_note(drift: Drift) -> str:
    """:func:`drift_markdown` as a paragraph to append to another, or "" when there is no drift."""
    return "" if drift.checked and not drift.drifted else f"\n\n{drift_markdown(drift)}"
