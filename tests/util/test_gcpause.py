"""gcpause: the collector is off inside the block, frozen-and-back-on after it, as it was before."""

from __future__ import annotations

import gc

import pytest

from softbee.runbook.util.gcpause import imports_without_gc


@pytest.fixture
def frozen(monkeypatch):
    """gc.freeze recorded, not done: the test process's objects stay collectable."""
    calls: list[str] = []
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    return calls


def test_the_collector_is_off_in_the_block_and_on_after_it_with_what_it_left_frozen(frozen):
    assert gc.isenabled()
    with imports_without_gc():
        assert not gc.isenabled()
    assert gc.isenabled() and frozen == ["freeze"]


def test_a_process_that_goes_on_working_can_leave_its_objects_collectable(frozen):
    with imports_without_gc(freeze=False):
        assert not gc.isenabled()
    assert gc.isenabled() and frozen == []


def test_an_import_that_fails_still_turns_the_collector_back_on(frozen):
    with pytest.raises(ModuleNotFoundError), imports_without_gc():
        import softbee_no_such_module  # noqa: F401
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off(frozen):
    gc.disable()
    try:
        with imports_without_gc():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
