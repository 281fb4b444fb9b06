"""catalog: runbooks, their purpose and parameters, read from the notebooks; parameter checks."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import softbee
from softbee.runbook.errors import CatalogError, ParameterError
from softbee.runbook.run import catalog
from softbee.runbook.run.catalog import (
    RUNBOOKS_DIR_ENV,
    check_parameters,
    find_runbook,
    list_runbooks,
    load_parameter_file,
    runbooks_dir,
)
from tests.helpers import EXAMPLES, REPO_ROOT

TOYS = EXAMPLES / "toy_runbooks"


@pytest.fixture(autouse=True)
def _toys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RUNBOOKS_DIR_ENV, str(TOYS))


def _write_runbook(
    folder: Path, name: str, parameters: str, heading: str = "# Does a thing"
) -> Path:
    cell = new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[new_markdown_cell(heading), cell])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


# -- where the runbooks are -------------------------------------------------------------------


def test_runbooks_dir_is_the_environment_variable_when_set():
    assert runbooks_dir() == TOYS


def test_runbooks_dir_refuses_an_environment_variable_that_is_not_a_directory(
    monkeypatch, tmp_path
):
    monkeypatch.setenv(RUNBOOKS_DIR_ENV, str(tmp_path / "missing"))

    with pytest.raises(CatalogError, match=RUNBOOKS_DIR_ENV):
        runbooks_dir()


def test_runbooks_dir_is_the_source_trees_runbooks_not_the_current_directory(monkeypatch, tmp_path):
    monkeypatch.delenv(RUNBOOKS_DIR_ENV)
    (tmp_path / "runbooks").mkdir()
    monkeypatch.chdir(tmp_path)

    assert runbooks_dir() == REPO_ROOT / "runbooks"


def test_a_wheel_install_finds_the_runbooks_in_the_prefix_data_files(monkeypatch, tmp_path):
    monkeypatch.delenv(RUNBOOKS_DIR_ENV)
    site_packages = tmp_path / "lib" / "site-packages" / "softbee"
    site_packages.mkdir(parents=True)
    monkeypatch.setattr(softbee, "__file__", str(site_packages / "__init__.py"))
    shared = tmp_path / "share" / "softbee" / "runbooks"
    shared.mkdir(parents=True)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))

    assert runbooks_dir() == shared


# -- what they are ----------------------------------------------------------------------------


def test_list_runbooks_reads_each_purpose_from_the_first_markdown_line():
    runbooks = {r.name: r for r in list_runbooks()}

    assert sorted(runbooks) == ["failing", "leaky", "passing"]
    assert runbooks["passing"].purpose == "Toy: record facts at each step and pass"
    assert runbooks["failing"].purpose == "Toy: fail in the middle of the run"


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("# Title\n\nWhy it matters.", "Title"),
        ("\n   ## Step 2: migrate  \nWhy.", "Step 2: migrate"),
        ("Plain words first", "Plain words first"),
        ("", ""),
        ("\n  \n", ""),
    ],
)
def test_first_line_is_the_first_non_blank_line_without_its_leading_hashes(source, line):
    assert catalog.first_line(source) == line


def test_parameters_come_from_the_parameters_cell_with_types_defaults_and_help():
    passing = find_runbook("passing")
    params = {p.name: p for p in passing.parameters}

    assert [p.name for p in passing.parameters] == ["message", "count", "ratio", "dry_run", "label"]
    assert params["message"].required
    assert params["message"].help == "required: what this toy run says"
    assert (params["count"].kind, params["count"].default, params["count"].required) == (
        "int",
        "3",
        False,
    )
    assert params["dry_run"].kind == "bool"


def test_a_str_or_none_annotation_that_papermill_cannot_read_is_still_a_parameter():
    label = find_runbook("passing").parameter("label")

    assert label is not None
    assert (label.type_name, label.kind, label.nullable, label.required) == (
        "str | None",
        "str",
        True,
        False,
    )


def test_a_none_default_is_required_only_when_its_help_says_required(tmp_path):
    _write_runbook(
        tmp_path,
        "r",
        "a: str = None  # required: the thing\n"
        "b: str = None  # optional thing, required only on Tuesdays\n"
        "c: Optional[int] = None  # an optional int\n"
        "d = 2.5  # unannotated: kind from the default\n",
    )

    params = {p.name: p for p in find_runbook("r", tmp_path).parameters}

    assert [params[n].required for n in "abcd"] == [True, False, False, False]
    assert (params["c"].kind, params["c"].nullable) == ("int", True)
    assert (params["d"].kind, params["d"].type_name) == ("float", "")


def test_an_unknown_runbook_name_suggests_the_closest_one():
    with pytest.raises(CatalogError, match="did you mean 'passing'"):
        find_runbook("pasing")


def test_a_path_is_not_a_runbook_name():
    with pytest.raises(CatalogError, match="no runbook"):
        find_runbook("../toy_runbooks/passing")


def test_a_damaged_notebook_is_flagged_without_hiding_the_others(tmp_path):
    _write_runbook(tmp_path, "good", "x: int = 1  # a number")
    (tmp_path / "broken.ipynb").write_text("{ not json", encoding="utf-8")

    runbooks = {r.name: r for r in list_runbooks(tmp_path)}

    assert runbooks["good"].problem is None
    assert "cannot be read" in (runbooks["broken"].problem or "")
    with pytest.raises(CatalogError, match="broken"):
        find_runbook("broken", tmp_path)


# -- parameter checks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("count", "7", 7),
        ("ratio", "2", 2.0),
        ("dry_run", "yes", True),
        ("dry_run", "0", False),
        ("dry_run", "FALSE", False),
        ("label", "None", None),
        ("label", "v2", "v2"),
        ("message", "None", "None"),  # plain str: "None" is just text
    ],
)
def test_p_values_are_coerced_to_the_declared_type(name, text, value):
    checked = check_parameters(find_runbook("passing"), texts={"message": "hi", name: text})

    assert checked[name] == value
    assert type(checked[name]) is type(value)


def test_an_unknown_parameter_is_refused_with_the_ones_it_takes():
    with pytest.raises(ParameterError, match=r"unknown parameter 'mesage'.*did you mean 'message'"):
        check_parameters(find_runbook("passing"), texts={"mesage": "hi"})


def test_a_missing_required_parameter_is_refused_with_how_to_pass_it():
    with pytest.raises(
        ParameterError,
        match=r"needs parameter 'message' \(what this toy run says\): pass -p message VALUE",
    ):
        check_parameters(find_runbook("passing"), texts={"count": "1"})


@pytest.mark.parametrize(
    ("name", "text"), [("count", "many"), ("ratio", "1.2.3"), ("dry_run", "maybe")]
)
def test_a_p_value_of_the_wrong_type_is_refused(name, text):
    with pytest.raises(ParameterError, match=f"parameter '{name}' expects"):
        check_parameters(find_runbook("passing"), texts={"message": "hi", name: text})


def test_every_problem_is_reported_at_once_on_one_line():
    with pytest.raises(ParameterError) as caught:
        check_parameters(find_runbook("passing"), texts={"nope": "1", "count": "x"})

    message = str(caught.value)
    assert "\n" not in message
    assert "'nope'" in message and "'count'" in message and "'message'" in message


def test_yaml_values_keep_their_types_but_are_still_checked():
    passing = find_runbook("passing")

    checked = check_parameters(
        passing, values={"message": "hi", "count": 4, "ratio": 1, "label": None}
    )
    assert checked == {"message": "hi", "count": 4, "ratio": 1.0, "label": None}

    with pytest.raises(ParameterError, match=r"'count' expects int, got '4' .*unquote it"):
        check_parameters(passing, values={"message": "hi", "count": "4"})
    with pytest.raises(ParameterError, match="'count' expects int, got bool"):
        check_parameters(passing, values={"message": "hi", "count": True})
    with pytest.raises(ParameterError, match="quote it"):
        check_parameters(passing, values={"message": dt.date(2024, 1, 1)})
    with pytest.raises(ParameterError, match="needs parameter 'message'"):
        check_parameters(passing, values={"message": None})


def test_p_values_override_the_parameters_file():
    checked = check_parameters(
        find_runbook("passing"), values={"message": "file", "count": 1}, texts={"message": "cli"}
    )

    assert checked == {"message": "cli", "count": 1}


def test_load_parameter_file_reads_a_yaml_mapping(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("message: hello\ncount: 3\ndry_run: yes\n", encoding="utf-8")

    assert load_parameter_file(path) == {"message": "hello", "count": 3, "dry_run": True}


@pytest.mark.parametrize(
    ("content", "match"),
    [(None, "not found"), ("a: [1,\n", "not valid YAML"), ("- a\n- b\n", "must be a YAML mapping")],
)
def test_load_parameter_file_refuses_bad_files_in_one_line(tmp_path, content, match):
    path = tmp_path / "params.yaml"
    if content is not None:
        path.write_text(content, encoding="utf-8")

    with pytest.raises(ParameterError, match=match) as caught:
        load_parameter_file(path)
    assert "\n" not in str(caught.value)


def test_an_empty_parameters_file_means_no_values(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("", encoding="utf-8")

    assert load_parameter_file(path) == {}


def test_the_real_runbooks_in_the_repository_can_all_be_read(monkeypatch):
    monkeypatch.delenv(RUNBOOKS_DIR_ENV)

    runbooks = catalog.list_runbooks()

    assert all(r.problem is None for r in runbooks), [r.problem for r in runbooks if r.problem]


def test_parameters_read_with_ast_are_what_papermill_reads_where_it_can(monkeypatch):
    """The catalog no longer asks papermill (seconds to import): on every runbook it agrees."""
    from papermill import inspect_notebook

    monkeypatch.delenv(RUNBOOKS_DIR_ENV)
    for runbook in catalog.list_runbooks():
        ours = {p.name: p for p in runbook.parameters}
        theirs = catalog._papermill_parameters(runbook.path)
        assert set(theirs) <= set(ours), runbook.name
        for name, (type_name, default, help_text) in theirs.items():
            expected = catalog._make_parameter(name, type_name, default, help_text)
            assert ours[name] == expected, (runbook.name, name)
        assert inspect_notebook(str(runbook.path)).keys() == theirs.keys()


def test_a_parameters_cell_that_is_not_python_is_read_by_papermills_pattern(tmp_path):
    _write_runbook(tmp_path, "odd", "count: int = 3  # how many\nthis is not python\n")

    [count] = find_runbook("odd", tmp_path).parameters

    assert (count.name, count.kind, count.default, count.help) == ("count", "int", "3", "how many")


def test_listing_runbooks_imports_neither_nbformat_nor_papermill(tmp_path):
    import subprocess

    probe = ("import sys; from softbee.runbook.run.catalog import list_runbooks; list_runbooks(); "
             "print([m for m in ('nbformat', 'papermill') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, cwd=tmp_path)
    assert done.stdout.strip() == "[]"
