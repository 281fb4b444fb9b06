"""summary: facts recorded inside the kernel are stored in the notebook and merged back."""

from __future__ import annotations

import datetime as dt
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from softbee.runbook.archive import summary
from softbee.runbook.archive.summary import MIME_TYPE, read_summary, record


@pytest.fixture
def displayed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, dict[str, Any]]]:
    """Capture what ``record`` hands to IPython's display."""
    import IPython.display

    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: calls.append((obj, kw)))
    return calls


def _facts_output(facts: dict[str, Any]) -> nbformat.NotebookNode:
    return new_output("display_data", data={MIME_TYPE: facts, "text/plain": "facts"})


def test_record_displays_the_facts_as_a_raw_softbee_bundle_that_shows_nothing(displayed):
    record(runbook="upgrade_downgrade", revision_before="abc123")

    ((bundle, kwargs),) = displayed
    assert kwargs == {"raw": True}
    assert bundle[MIME_TYPE] == {"runbook": "upgrade_downgrade", "revision_before": "abc123"}
    assert bundle["text/plain"] == ""  # for the archive, not for the reader


def test_record_masks_url_passwords_and_turns_unknown_objects_into_text(displayed):
    record(outcome="connected to postgresql://app:hunter22@db/prod", at=dt.date(2024, 5, 1))

    bundle = displayed[0][0][MIME_TYPE]
    assert bundle["outcome"] == "connected to postgresql://app:***@db/prod"
    assert bundle["at"] == "2024-05-01"


def test_read_summary_merges_facts_in_cell_order_and_later_keys_win():
    nb = new_notebook(
        cells=[
            new_code_cell(
                "preflight", outputs=[_facts_output({"revision_before": "a", "outcome": "early"})]
            ),
            new_code_cell("print", outputs=[new_output("stream", name="stdout", text="hello\n")]),
            new_code_cell(
                "after", outputs=[_facts_output({"revision_after": "b", "outcome": "done"})]
            ),
        ]
    )

    assert read_summary(nb) == {"revision_before": "a", "revision_after": "b", "outcome": "done"}


def test_facts_recorded_before_a_failure_survive_it():
    nb = new_notebook(
        cells=[
            new_code_cell("preflight", outputs=[_facts_output({"revision_before": "a"})]),
            new_code_cell(
                "boom",
                outputs=[new_output("error", ename="RuntimeError", evalue="boom", traceback=[])],
            ),
        ]
    )

    assert read_summary(nb) == {"revision_before": "a"}


def test_the_bundle_survives_a_write_and_read_of_the_notebook_file(tmp_path):
    nb = new_notebook(
        cells=[new_code_cell("x", outputs=[_facts_output({"row_counts": [{"table": "u"}]})])]
    )
    path = tmp_path / "run.ipynb"
    nbformat.validate(nb)
    nbformat.write(nb, path)

    facts = read_summary(nbformat.read(path, as_version=4))

    assert facts == {"row_counts": [{"table": "u"}]}
    assert type(facts["row_counts"][0]) is dict  # plain dicts, not NotebookNodes


def test_read_summary_accepts_bundles_stored_as_json_text_and_skips_garbage():
    nb = {
        "cells": [
            {
                "outputs": [
                    {"output_type": "display_data", "data": {MIME_TYPE: '{"environment": "test"}'}}
                ]
            },
            {"outputs": [{"output_type": "display_data", "data": {MIME_TYPE: "not json"}}]},
            {"cell_type": "markdown"},
        ]
    }

    assert read_summary(nb) == {"environment": "test"}


def test_the_documented_fact_keys_are_the_ones_the_archive_reads():
    assert set(summary.FACT_KEYS) == {
        "runbook",
        "database",
        "environment",
        "revision_before",
        "revision_after",
        "row_counts",
        "outcome",
    }


def test_first_words_name_outcome_revisions_round_trip_progress_and_findings_one_line_each():
    from softbee.runbook.archive.summary import first_words

    facts = {"outcome": "upgrade a -> b", "revision_before": "a", "revision_after": "b",
             "round_trip": "passed: 4 checks", "in_progress": ["revision c: phase 2 of 3 running"],
             "state_problems": ["records unknown revision d:\nrun recover_stamp"]}
    assert first_words(facts) == [
        "passed: upgrade a -> b", "revision: a -> b", "round trip: passed: 4 checks",
        "in progress: revision c: phase 2 of 3 running",
        "finding: records unknown revision d: run recover_stamp"]
    failed = first_words({"revision_before": "a"},
                         {"type": "RevisionError", "message": "no such\nrevision", "step": "1. Go"})
    assert failed == ["failed at step '1. Go': RevisionError: no such revision",
                      "revision: a -> (none)"]


def test_first_words_name_a_change_made_outside_the_runbooks():
    from softbee.runbook.archive.summary import first_words

    line = "recorded a by run 3f2a… on 2026-12-01; now at b with no run recorded"
    assert first_words({"outcome": "done", "moved_outside": [line]}) == [
        "passed: done", f"changed outside the runbooks: {line}"]
