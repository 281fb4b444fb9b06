"""Row counts, exact and estimated, and their comparison."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from softbee.runbook.errors import ParameterError
from softbee.runbook.review.counts import (
    column_value_counts,
    compare_counts,
    counts_bars,
    counts_table,
    row_counts,
)
from tests.helpers import HEAD, project_at


def test_exact_counts_match_the_rows_seeded(database_url: str) -> None:
    project = project_at(database_url, HEAD, rows=120)
    with project.connect() as conn:
        counts = row_counts(conn)
        expected = {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in counts}
    assert counts == expected
    assert counts["inspections"] == 120 and "alembic_version" not in counts


@pytest.mark.postgres
def test_estimates_come_from_statistics_after_analyze(postgres_url: str) -> None:
    project = project_at(postgres_url, HEAD, rows=300)
    with project.connect() as conn:
        conn.exec_driver_sql("ANALYZE inspections")
        conn.exec_driver_sql("INSERT INTO users (email, username, password_hash, first_name, last_name, "
                             "full_name) VALUES ('late@x.io', 'late', 'h', 'L', 'Ate', 'L Ate')")
        estimate, exact = row_counts(conn, "estimate"), row_counts(conn, "exact")
    assert estimate["inspections"] == 300
    assert exact["users"] == estimate["users"], "never-analysed tables fall back to an exact count"


def test_unknown_count_mode_is_refused(sqlite_url: str) -> None:
    project = project_at(sqlite_url, HEAD)
    with project.connect() as conn, pytest.raises(ParameterError, match="count_mode"):
        row_counts(conn, "guess")


def test_column_value_counts_count_non_null_values(sqlite_url: str) -> None:
    project = project_at(sqlite_url, HEAD, rows=50)
    with project.connect() as conn:
        values = column_value_counts(conn, ["inspections"])["inspections"]
        nulls = conn.execute(sa.text("SELECT count(*) FROM inspections WHERE notes IS NULL")).scalar_one()
    assert values["id"] == 50 and values["notes"] == 50 - nulls


def test_comparison_marks_created_and_dropped_tables() -> None:
    frame = compare_counts({"a": 5, "b": 2}, {"a": 3, "c": 0}).set_index("table")
    assert frame.loc["a", "delta"] == -2
    assert frame.loc["b", "note"] == "dropped" and frame.loc["b", "delta"] == -2
    assert frame.loc["c", "note"] == "created"


def test_counts_bars_draws_each_count_as_a_bar_scaled_to_the_largest():
    frame = compare_counts({"hives": 10, "users": 5}, {"hives": 10, "users": 20, "treatments": 0})

    page = counts_bars(frame).to_html()

    assert "#6a9fd4 100.0%" in page  # users after: the largest
    assert "#6a9fd4 50.0%" in page and "#6a9fd4 25.0%" in page  # hives 10, users before 5
    assert page.count("<tr>") == 4  # header and three tables
    assert '<td class="data row0 col0" >' in page  # no id (nor its CSS) on cells without a bar
    assert '<td id="T_' in page and 'col0"' not in page.split("</style>")[0]


def test_counts_table_says_so_when_there_are_no_tables_yet():
    assert counts_table({}).data == "No tables yet."
    assert counts_table({"users": 3}).to_frame().to_dict() == {"rows": {"users": 3}}


def test_counts_bars_fall_back_to_the_plain_table_when_pandas_styler_cannot_load(monkeypatch) -> None:
    """pandas 3's Styler needs Jinja2 >= 3.1.6; a project pinning an older one still gets its table."""
    import builtins

    import pandas as pd

    from softbee.runbook.review.counts import compare_counts, counts_bars

    real_import = builtins.__import__

    def no_styler(name, *args, **kwargs):
        if name == "pandas.io.formats.style":
            raise ImportError("Pandas requires version '3.1.6' or newer of 'jinja2'")
        return real_import(name, *args, **kwargs)

    frame = compare_counts({"users": 3}, {"users": 5})
    monkeypatch.setattr(builtins, "__import__", no_styler)
    shown = counts_bars(frame)
    assert isinstance(shown, pd.DataFrame) and shown.equals(frame)


def test_counts_bars_show_the_plain_table_when_no_count_changed():
    """Nothing to compare: no bars, and pandas' Styler (and its templates) is not loaded."""
    import pandas as pd

    unchanged = compare_counts({"hives": 10, "users": 5}, {"hives": 10, "users": 5})
    created = compare_counts({"hives": 10}, {"hives": 10, "treatments": 0})

    assert isinstance(counts_bars(unchanged), pd.DataFrame)
    assert counts_bars(unchanged).equals(unchanged)
    assert not isinstance(counts_bars(created), pd.DataFrame)  # a table appeared: bars
