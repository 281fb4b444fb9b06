"""A small table a runbook shows, drawn as pandas draws a DataFrame, without importing pandas.

A runbook's kernel showed its tables as DataFrames, and importing pandas (with numpy)
was a fifth of the kernel's start-up, on every run's critical path, for tables of a few
rows of text and counts. A :class:`Table` holds its rows as they are and draws them
itself when every cell is a string, an integer, a boolean or ``None`` and the table
fits pandas' display limits: the HTML is the HTML the kernel showed for the same
DataFrame (pandas' ``to_html(notebook=True)`` with :func:`plain_cell`: "—" for a
missing value, "yes"/"no" for a boolean; ``tests/util/test_table.py`` compares them),
and the text an aligned plain table with the same words. Anything else (a float, a long
or multi-line string, a big table) is drawn by pandas from :meth:`Table.to_frame`, the
DataFrame the table stands for, exactly as before.
"""

from __future__ import annotations

import html
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

#: What a missing value shows as.
NONE = "—"
#: pandas' defaults for ``display.max_rows``, ``display.max_columns`` and ``display.max_colwidth``.
_MAX_ROWS, _MAX_COLUMNS, _MAX_COLWIDTH = 60, 20, 50
_STYLE = """<style scoped>
    .dataframe tbody tr th:only-of-type {
        vertical-align: middle;
    }

    .dataframe tbody tr th {
        vertical-align: top;
    }

    .dataframe thead th {
        text-align: right;
    }
</style>
"""


def plain_cell(value: Any) -> Any:
    """A table cell as a person reads it: "—" for missing, "yes"/"no" for booleans."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NONE
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "yes" if value else "no"
    pandas = sys.modules.get("pandas")  # pandas' missing values exist only once it is loaded
    if pandas is not None and (value is getattr(pandas, "NA", None)
                               or value is getattr(pandas, "NaT", None)):
        return NONE
    return value


def frame_html(frame: pd.DataFrame) -> str:
    """A DataFrame's HTML with :func:`plain_cell` applied, as a runbook's kernel shows it."""
    import pandas as pd

    shown = frame.map(plain_cell) if hasattr(frame, "map") else frame.applymap(plain_cell)
    return str(shown.to_html(na_rep=NONE, notebook=True, max_rows=pd.get_option(
        "display.max_rows"), max_cols=pd.get_option("display.max_columns")))


class Table:
    """Rows under named columns, shown without pandas when they are simple enough.

    ``frame`` makes the DataFrame the table stands for (:meth:`to_frame`); ``index``
    labels the rows (default 0, 1, 2...), under ``index_name`` when given.
    """

    def __init__(
        self,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        frame: Callable[[], pd.DataFrame],
        *,
        index: Sequence[Any] | None = None,
        index_name: str | None = None,
    ) -> None:
        self.columns = tuple(columns)
        self.rows = [tuple(row) for row in rows]
        self.index = tuple(range(len(self.rows))) if index is None else tuple(index)
        self.index_name = index_name
        self._frame = frame

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def empty(self) -> bool:
        """Whether the table has no rows (or no columns), as ``DataFrame.empty``."""
        return not self.rows or not self.columns

    def to_frame(self) -> pd.DataFrame:
        """The DataFrame this table stands for (imports pandas)."""
        return self._frame()

    def simple(self) -> bool:
        """Whether the table is drawn here: plain cells, within pandas' display limits."""
        max_rows, max_columns, max_width = _limits()
        if len(self.rows) > max_rows or len(self.columns) > max_columns:
            return False
        cells = [*self.columns, *self.index, *(cell for row in self.rows for cell in row)]
        if not all(_plain(cell, max_width) for cell in cells):
            return False
        for column in zip(*self.rows, strict=True):  # pandas makes integers with a gap floats
            kinds = {type(value) for value in column}
            if type(None) in kinds and int in kinds:
                return False
        return True

    def _repr_html_(self) -> str:
        if not self.simple():
            return frame_html(self.to_frame())
        cell = _html_cell
        lines = ["<div>", _STYLE.rstrip("\n"), '<table border="1" class="dataframe">',
                 "  <thead>", '    <tr style="text-align: right;">', "      <th></th>",
                 *(f"      <th>{cell(name)}</th>" for name in self.columns), "    </tr>"]
        if self.index_name is not None:
            lines += ["    <tr>", f"      <th>{cell(self.index_name)}</th>",
                      *("      <th></th>" for _ in self.columns), "    </tr>"]
        lines += ["  </thead>", "  <tbody>"]
        for label, row in zip(self.index, self.rows, strict=True):
            lines += ["    <tr>", f"      <th>{cell(label)}</th>",
                      *(f"      <td>{cell(value)}</td>" for value in row), "    </tr>"]
        lines += ["  </tbody>", "</table>", "</div>"]
        return "\n".join(lines)

    def __repr__(self) -> str:
        if not self.simple():
            import pandas as pd

            # As a headless kernel showed it when pandas was loaded before IPython (then
            # display.max_columns was 0: the frame cut to 80 columns of text, "...").
            with pd.option_context("display.max_columns", 0):
                return repr(self.to_frame())
        if not self.rows:
            return f"Empty table\nColumns: [{', '.join(self.columns)}]"
        index = [str(plain_cell(label)) for label in self.index]
        body = [[str(plain_cell(value)) for value in row] for row in self.rows]
        header = ["", *self.columns]
        grid = [header, *([self.index_name, *[""] * len(self.columns)]
                          for _ in [0] if self.index_name is not None),
                *([label, *row] for label, row in zip(index, body, strict=True))]
        widths = [max(len(line[column]) for line in grid) for column in range(len(header))]
        return "\n".join(
            "  ".join(text.ljust(widths[0]) if column == 0 else text.rjust(widths[column])
                      for column, text in enumerate(line)).rstrip()
            for line in grid)


def _limits() -> tuple[int, int, int]:
    """pandas' display limits: its options once it is loaded, else its defaults."""
    pandas = sys.modules.get("pandas")
    if pandas is None:
        return _MAX_ROWS, _MAX_COLUMNS, _MAX_COLWIDTH
    get = pandas.get_option
    return (get("display.max_rows") or sys.maxsize, get("display.max_columns") or sys.maxsize,
            get("display.max_colwidth") or sys.maxsize)


def _plain(value: Any, max_width: int) -> bool:
    """Whether pandas would show ``value`` as its plain text (no float format, no cut)."""
    if value is None or isinstance(value, bool | int):
        return True
    return (type(value) is str and len(value) <= max_width
            and value.isprintable())


def _html_cell(value: Any) -> str:
    """A cell's text as pandas writes it in HTML: the plain word, ``<``, ``>``, ``&`` escaped."""
    return html.escape(str(plain_cell(value)), quote=False)
