"""pytest-alembic's built-in checks, on SQLite and on PostgreSQL (see conftest.py).

Importing them here collects them as ordinary tests of this module, so they run
without ``--test-alembic`` and with this folder's ``alembic_config``/``alembic_engine``.
"""

from __future__ import annotations

from pytest_alembic.tests import (
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
from pytest_alembic.tests.experimental import test_downgrade_leaves_no_trace

__all__ = [
    "test_downgrade_leaves_no_trace",
    "test_model_definitions_match_ddl",
    "test_single_head_revision",
    "test_up_down_consistency",
    "test_upgrade",
]
