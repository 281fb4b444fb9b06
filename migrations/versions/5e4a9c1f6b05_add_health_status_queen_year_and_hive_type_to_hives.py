"""Add health status, queen year and hive type to hives

Inspections revealed what the hive record lacked: the colony's overall health
(existing hives start as 'unknown'), the year its queen was introduced, and the
kind of box it lives in (existing hives are assumed to be Langstroth).

Revision ID: 5e4a9c1f6b05
Revises: 4d3f8b0e5a04
Create Date: 2024-05-13 11:58:40.216733

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '5e4a9c1f6b05'
down_revision = '4d3f8b0e5a04'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('hives', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                'hive_type', sa.String(length=40), server_default='langstroth', nullable=False
            )
        )
        batch_op.add_column(
            sa.Column(
                'health_status', sa.String(length=20), server_default='unknown', nullable=False
            )
        )
        batch_op.add_column(sa.Column('queen_year', sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table('hives', schema=None) as batch_op:
        batch_op.drop_column('queen_year')
        batch_op.drop_column('health_status')
        batch_op.drop_column('hive_type')
