"""A run's options as one object: RunOptions and Timeouts."""

from __future__ import annotations

import pytest

from softbee.runbook.errors import ParameterError
from softbee.runbook.util.options import DEFAULT_LOCK_TIMEOUT_MS, RunOptions, Timeouts


def test_options_built_from_an_entry_points_keywords_are_those_keywords():
    options = RunOptions.given(None, rehearse=True, lock_timeout_ms=300, count_mode="estimate")
    assert (options.rehearse, options.lock_timeout_ms, options.count_mode) == (True, 300, "estimate")
    assert options.timeouts == Timeouts(300, None)
    assert RunOptions().timeouts == Timeouts(DEFAULT_LOCK_TIMEOUT_MS, None)


def test_given_options_are_used_whole_when_the_keywords_are_left_at_their_defaults():
    mine = RunOptions(round_trip=True, statement_timeout_ms=900)
    assert RunOptions.given(mine, round_trip=False, lock_timeout_ms=DEFAULT_LOCK_TIMEOUT_MS) is mine


def test_options_and_a_keyword_that_says_otherwise_are_refused_not_one_dropped():
    with pytest.raises(ParameterError, match="pass either options= or lock_wait_s, rehearse"):
        RunOptions.given(RunOptions(), rehearse=True, lock_wait_s=2.0)


def test_but_changes_a_copy_and_the_options_stay_frozen():
    options = RunOptions()
    copy = options.but(allow_data_loss=True)
    assert copy.allow_data_loss and not options.allow_data_loss
    with pytest.raises(AttributeError):
        options.rehearse = True  # type: ignore[misc]
