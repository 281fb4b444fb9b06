"""Add varroa mite count per 100 bees to inspections

inspections is the largest table, so the change is made with
op.batch_alter_table: on SQLite the column and its index go in one batch, on
PostgreSQL they are plain ALTER TABLE / CREATE INDEX statements. The column is
nullable, so past inspections need no backfill.

Revision ID: 7a6c1e3b8d07
Revises: 6f5b0d2a7c06
Create Date: 2024-07-15 13:22:58.031774

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '7a6c1e3b8d07'
down_revision = '6f5b0d2a7c06'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('inspections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('varroa_mites_per_100', sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f('ix_inspections_varroa_mites_per_100'),
            ['varroa_mites_per_100'],
            unique=False,
        )


def downgrade():
    with op.batch_alter_table('inspections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inspections_varroa_mites_per_100'))
        batch_op.drop_column('varroa_mites_per_100')
