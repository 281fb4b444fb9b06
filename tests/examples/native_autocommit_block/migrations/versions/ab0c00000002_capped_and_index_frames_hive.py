"""Add frames.capped; index frames.hive concurrently

Revision ID: ab0c00000002
Revises: ab0c00000001
Create Date: 2026-11-03 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'ab0c00000002'
down_revision = 'ab0c00000001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('frames', schema=None) as batch_op:
        batch_op.add_column(sa.Column('capped', sa.Boolean(), nullable=True))

    # CREATE INDEX CONCURRENTLY cannot run inside a transaction block.
    with op.get_context().autocommit_block():
        op.create_index('ix_frames_hive', 'frames', ['hive'], unique=False,
                        postgresql_concurrently=True)


def downgrade():
    with op.get_context().autocommit_block():
        op.drop_index('ix_frames_hive', table_name='frames', postgresql_concurrently=True)

    with op.batch_alter_table('frames', schema=None) as batch_op:
        batch_op.drop_column('capped')
