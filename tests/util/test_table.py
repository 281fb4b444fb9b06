"""Table: the runbooks' small tables, drawn as the kernel drew their DataFrames, without pandas."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from softbee.runbook.review.counts import compared_table, counts_bars, counts_table
from softbee.runbook.review.plan import Plan
from softbee.runbook.review.state import State, state_table
from softbee.runbook.util.table import NONE, Table, frame_html
from tests.helpers import REPO_ROOT


def _state(in_progress: tuple[str, ...] = ()) -> State:
    return State(current=("8b7d2f4c9e08",), heads=("8b7d2f4c9e08",), unknown=(),
                 in_progress=in_progress)


def _plan(*messages: str) -> Plan:
    scripts = [SimpleNamespace(revision=f"r{i}", doc=message) for i, message in enumerate(messages)]
    return Plan(direction="upgrade", start=None, target=None, scripts=scripts)  # type: ignore[arg-type]


def _tables() -> dict[str, Table]:
    return {
        "state": state_table(_state()),
        "state in progress": state_table(_state(in_progress=("r2 phase 1/3 <backfill> & more",))),
        "counts": counts_table({"apiaries": 0, "hives": 12, "users": 1234567}),
        "compared, unchanged": compared_table({"hives": 3, "users": 0}, {"hives": 3, "users": 0}),
        "compared, changed": compared_table({"hives": 3}, {"hives": 4, "users": 0}),
        "plan, empty": _plan().table(),
        "plan": _plan("add hives.name", "a <quoted> 'message' & \"more\"").table(),
        "plan, long message": _plan("x" * 70).table(),
        "plan, two lines": _plan("first line\nsecond").table(),
        "booleans and none": Table(["ok", "note"], [[True, None], [False, ""]],
                                   lambda: __import__("pandas").DataFrame(
                                       [[True, None], [False, ""]], columns=["ok", "note"])),
    }


@pytest.mark.parametrize("name", list(_tables()))
def test_a_table_is_drawn_in_html_exactly_as_its_dataframe_was(name):
    table = _tables()[name]

    assert table._repr_html_() == frame_html(table.to_frame())


def test_only_plain_cells_are_drawn_without_pandas():
    tables = _tables()

    assert tables["state"].simple() and tables["counts"].simple() and tables["plan"].simple()
    assert tables["compared, unchanged"].simple()
    assert not tables["compared, changed"].simple()  # a count missing on one side: floats
    assert not tables["plan, long message"].simple()  # pandas cuts it at 50 characters
    assert not tables["plan, two lines"].simple()
    assert not Table(["seconds"], [[0.25]], lambda: None).simple()  # pandas formats floats


def test_the_text_of_a_table_reads_as_its_html_does():
    text = repr(Table(["ok", "note"], [[True, None], [False, "fine"]], lambda: None))

    assert text.splitlines() == ["    ok  note", f"0  yes     {NONE}", "1   no  fine"]
    assert repr(_plan().table()) == "Empty table\nColumns: [step, revision, message]"
    assert repr(counts_table({"hives": 12})).splitlines() == [
        "       rows", "table", "hives    12"]


def test_unchanged_counts_are_shown_as_the_table_itself():
    unchanged = compared_table({"hives": 3}, {"hives": 3})

    assert counts_bars(unchanged) is unchanged
    assert not isinstance(counts_bars(compared_table({"hives": 3}, {"hives": 4})), Table)


def test_a_no_op_upgrade_downgrade_kernel_never_imports_pandas(tmp_path):
    """The preload and every code cell of a no-op run, in a fresh interpreter, without pandas."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'noop.sqlite3'}",
           "FLASK_APP": "softbee"}
    env.pop("SOFTBEE_RUNBOOKS_DIR", None)
    subprocess.run([str(Path(sys.executable).parent / "flask"), "db", "upgrade"], cwd=REPO_ROOT,
                   env=env, check=True, capture_output=True, timeout=60)
    script = textwrap.dedent("""
        import importlib.abc, json, sys

        class NoPandas(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.partition(".")[0] in ("pandas", "numpy"):
                    raise ImportError("pandas imported by a no-op run: " + name)

        from softbee.runbook.run.execute import prepare_run
        from softbee.runbook.run.kernel_launch import preload

        prepared = prepare_run("upgrade_downgrade")
        sys.meta_path.insert(0, NoPandas())
        assert preload(prepared.preload) == list(prepared.preload)
        import softbee.runbook.run.cells
        shown = []
        namespace = {"display": lambda *objects: shown.extend(
            getattr(o, "_repr_html_", lambda: "")() for o in objects)}
        for cell in json.loads(prepared.runbook.path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                exec("".join(cell["source"]).replace(", display", ""), namespace)
        assert "pandas" not in sys.modules and "numpy" not in sys.modules
        print(sum('class="dataframe"' in page for page in shown), "tables")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=REPO_ROOT, env=env)

    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-2:] == ["5", "tables"]
