"""Row counts per table, exact or from PostgreSQL's statistics, and their comparison."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from softbee.runbook.errors import ParameterError
from softbee.runbook.online.phases import PHASE_TABLE
from softbee.runbook.util.history_name import HISTORY_TABLE, is_history_table
from softbee.runbook.util.table import Table

if TYPE_CHECKING:  # pandas is imported by the functions that make DataFrames, when they run
    import pandas as pd

COUNT_MODES = ("exact", "estimate")
# Alembic's version table, the runbook's record of online phases, which exists only
# while an online revision is in progress, and the runbooks' history (a configured name
# is left out too: is_history_table).
SKIPPED_TABLES = frozenset({"alembic_version", PHASE_TABLE, HISTORY_TABLE})


def user_tables(connection: Connection) -> list[str]:
    """Tables in the default schema, without Alembic's version table."""
    names = sa.inspect(connection).get_table_names()
    return sorted(name for name in names
                  if name not in SKIPPED_TABLES and not is_history_table(name))


def row_counts(
    connection: Connection, mode: str = "exact", tables: list[str] | None = None
) -> dict[str, int]:
    """Rows per table (all user tables, or ``tables``): ``exact`` counts, ``estimate`` reads pg_class."""
    if mode not in COUNT_MODES:
        raise ParameterError(f"count_mode {mode!r} is not one of {', '.join(COUNT_MODES)}")
    tables = user_tables(connection) if tables is None else tables
    estimates: dict[str, int] = {}
    if mode == "estimate" and connection.dialect.name == "postgresql":
        estimates = _pg_estimates(connection)
    preparer = connection.dialect.identifier_preparer
    counts: dict[str, int] = {}
    for table in tables:
        if table in estimates:
            counts[table] = estimates[table]
        else:
            query = f"SELECT count(*) FROM {preparer.quote(table)}"
            counts[table] = int(connection.exec_driver_sql(query).scalar_one())
    return counts


def _pg_estimates(connection: Connection) -> dict[str, int]:
    """reltuples for analysed tables; never-analysed tables (-1) are left to an exact count."""
    rows = connection.execute(
        sa.text(
            "SELECT c.relname, c.reltuples FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname = current_schema()"
        )
    )
    return {name: int(tuples) for name, tuples in rows if tuples >= 0}


def has_rows(connection: Connection, table: str) -> bool:
    """True when ``table`` holds at least one row (reads one row, never counts)."""
    quoted = connection.dialect.identifier_preparer.quote(table)
    return connection.exec_driver_sql(f"SELECT 1 FROM {quoted} LIMIT 1").first() is not None


def column_value_counts(connection: Connection, tables: list[str] | None = None) -> dict[str, dict[str, int]]:
    """Non-null values per column per table, one scan per table."""
    inspector = sa.inspect(connection)
    preparer = connection.dialect.identifier_preparer
    result: dict[str, dict[str, int]] = {}
    for table in tables if tables is not None else user_tables(connection):
        columns = [col["name"] for col in inspector.get_columns(table)]
        if not columns:
            continue
        selects = ", ".join(f"count({preparer.quote(col)})" for col in columns)
        values = connection.exec_driver_sql(f"SELECT {selects} FROM {preparer.quote(table)}").one()
        result[table] = {col: int(v) for col, v in zip(columns, values, strict=True)}
    return result


def counts_table(counts: Mapping[str, int]) -> Any:
    """Rows per table as a one-column :class:`Table`, or a sentence when there are no tables yet."""
    if not counts:
        from IPython.display import Markdown

        return Markdown("No tables yet.")
    counts = dict(counts)

    def frame() -> pd.DataFrame:
        import pandas as pd

        return pd.Series(counts, name="rows", dtype="int64").rename_axis("table").to_frame()

    return Table(["rows"], ([int(n)] for n in counts.values()), frame, index=list(counts),
                 index_name="table")


def compare_counts(before: Mapping[str, int], after: Mapping[str, int]) -> pd.DataFrame:
    """A before/after/delta table over every table seen on either side."""
    import pandas as pd

    frame = pd.DataFrame(compared_rows(before, after),
                         columns=["table", "before", "after", "delta", "note"])
    return frame.astype({"before": "Int64", "after": "Int64", "delta": "int64"})


def compared_table(before: Mapping[str, int], after: Mapping[str, int]) -> Table:
    """:func:`compare_counts` as a :class:`Table` (shown without pandas when it can be)."""
    rows = compared_rows(before, after)
    return Table(["table", "before", "after", "delta", "note"],
                 (list(row.values()) for row in rows),
                 lambda: compare_counts(before, after))


def compared_rows(before: Mapping[str, int], after: Mapping[str, int]) -> list[dict[str, Any]]:
    """The rows of :func:`compare_counts` as plain dicts (``None``: no such table on that side)."""
    rows: list[dict[str, Any]] = []
    for table in sorted(set(before) | set(after)):
        b, a = before.get(table), after.get(table)
        rows.append(
            {
                "table": table,
                "before": b,
                "after": a,
                "delta": (a or 0) - (b or 0),
                "note": "created" if b is None else "dropped" if a is None else "",
            }
        )
    return rows


def unchanged(frame: pd.DataFrame | Table) -> bool:
    """Whether a :func:`compare_counts` table shows no difference at all."""
    if isinstance(frame, Table):
        if "delta" not in frame.columns or "note" not in frame.columns:
            return False
        delta, note = frame.columns.index("delta"), frame.columns.index("note")
        return all(row[delta] == 0 and row[note] == "" for row in frame.rows)
    if "delta" not in frame or "note" not in frame:
        return False
    return bool((frame["delta"] == 0).all() and (frame["note"] == "").all())


def counts_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The comparison as plain JSON-ready records (for the run summary)."""
    import pandas as pd

    return [
        {k: (None if pd.isna(v) else (int(v) if k != "table" and k != "note" else v))
         for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


def plot_counts(frame: pd.DataFrame, title: str = "Rows per table") -> Any:
    """A grouped bar chart of rows before and after, per table."""
    data = frame.set_index("table")[["before", "after"]].astype("float64").fillna(0)
    axes = data.plot.bar(title=title, rot=30, figsize=(8, 3.5))
    axes.set_ylabel("rows")
    return axes


def counts_bars(frame: pd.DataFrame | Table, color: str = "#6a9fd4") -> Any:
    """The before/after table with each count drawn as a bar in its cell: a chart a few KB in size.

    A PNG chart weighs tens of KB in the notebook and again in its archived HTML;
    bars drawn by CSS gradients in the table cost a few hundred bytes per table. When no
    count changed (no table created, dropped, or with other rows) there is nothing to
    compare: the plain table says so, without loading pandas' Styler and its templates
    (nor pandas, for a :class:`Table` from :func:`compared_table`).
    """
    if unchanged(frame):
        return frame
    if isinstance(frame, Table):
        frame = frame.to_frame()
    data = frame.copy()
    bars = [column for column in ("before", "after") if column in data]
    high = float(data[bars].max(skipna=True).max()) if bars and len(data) else 0.0
    try:
        from pandas.io.formats.style import Styler
    except ImportError:
        # pandas' Styler needs a newer Jinja2 than some projects pin (pandas 3: Jinja2 >= 3.1.6,
        # while Flask 2.1 projects often pin 3.1.2): the same table, without the bars.
        return frame
    return (
        Styler(data, cell_ids=False)  # ids only on the cells with bars
        .bar(subset=bars, color=color, vmin=0, vmax=high or 1, height=70)
        .hide(axis="index")
        .format(na_rep="-", subset=bars)
    )
