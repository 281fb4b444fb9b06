"""Add varroa mite count per 100 bees to inspections

inspections is the largest table. The column is nullable, so past inspections
need no backfill and adding it takes a brief lock only. Its index is an online
phase (softbee.runbook.online): on PostgreSQL it is built CONCURRENTLY, so the
application keeps writing, and an index left INVALID by a killed build is
rebuilt by the next run; elsewhere it is a plain CREATE INDEX.

Revision ID: 7a6c1e3b8d07
Revises: 6f5b0d2a7c06
Create Date: 2024-07-15 13:22:58.031774

"""
import sqlalchemy as sa
from alembic import op

from softbee.runbook import online

# revision identifiers, used by Alembic.
revision = '7a6c1e3b8d07'
down_revision = '6f5b0d2a7c06'
branch_labels = None
depends_on = None


def add_nullable_varroa_count():
    with op.batch_alter_table('inspections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('varroa_mites_per_100', sa.Integer(), nullable=True))


def upgrade():
    online.run_phases(
        revision,
        online.ddl('add inspections.varroa_mites_per_100, nullable', add_nullable_varroa_count),
        online.create_index(
            'ix_inspections_varroa_mites_per_100', 'inspections', ['varroa_mites_per_100']
        ),
    )


def downgrade():
    with op.batch_alter_table('inspections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inspections_varroa_mites_per_100'))
        batch_op.drop_column('varroa_mites_per_100')
