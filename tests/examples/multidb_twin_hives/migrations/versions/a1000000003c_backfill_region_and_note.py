"""backfill region and note (data migration)

Revision ID: a1000000003c
Revises: a1000000002b
Create Date: 2026-12-06 12:00:00.000000

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = 'a1000000003c'
down_revision = 'a1000000002b'
branch_labels = None
depends_on = None


def upgrade(engine_name):
    globals()["upgrade_%s" % engine_name]()


def downgrade(engine_name):
    globals()["downgrade_%s" % engine_name]()


def upgrade_():
    op.execute("UPDATE hives SET region = 'unassigned' WHERE region IS NULL")


def downgrade_():
    pass  # the values stay: the column goes with a1000000002b


def upgrade_audit():
    op.execute("UPDATE audit_events SET note = 'before notes' WHERE note IS NULL")


def downgrade_audit():
    pass  # the values stay: the column goes with a1000000002b
