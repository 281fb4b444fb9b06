"""pytest-alembic's built-in checks, on SQLite, PostgreSQL and MariaDB (see conftest.py).

Importing them here collects them as ordinary tests of this module, so they run
without ``--test-alembic`` and with this folder's ``alembic_config``/``alembic_engine``.

``test_downgrade_leaves_no_trace`` is the exception: it upgrades and downgrades inside a
nested transaction and rolls it back, which needs transactional DDL. MySQL and MariaDB
commit every ``CREATE``/``ALTER``/``DROP`` (the savepoint is gone when the rollback comes),
so it runs on SQLite and PostgreSQL only; ``tests/test_migrations.py``'s
``test_every_downgrade_gives_back_the_schema_its_upgrade_found`` makes the same check
without transactions, on all three.
"""

from __future__ import annotations

import pytest
from pytest_alembic import MigrationContext
from pytest_alembic.tests import (
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
from pytest_alembic.tests.experimental import (
    test_downgrade_leaves_no_trace as _downgrade_leaves_no_trace,
)

from tests.conftest import TRANSACTIONAL_DDL_DATABASES

__all__ = [
    "test_downgrade_leaves_no_trace",
    "test_model_definitions_match_ddl",
    "test_single_head_revision",
    "test_up_down_consistency",
    "test_upgrade",
]


@pytest.mark.parametrize("any_database_url", TRANSACTIONAL_DDL_DATABASES, indirect=True)
def test_downgrade_leaves_no_trace(alembic_runner: MigrationContext) -> None:
    """pytest-alembic's check that each downgrade undoes its upgrade (transactional DDL only)."""
    _downgrade_leaves_no_trace(alembic_runner)
