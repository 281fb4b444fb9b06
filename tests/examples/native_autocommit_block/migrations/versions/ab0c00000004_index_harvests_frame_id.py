"""Index harvests.frame_id concurrently

Revision ID: ab0c00000004
Revises: ab0c00000003
Create Date: 2026-11-05 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'ab0c00000004'
down_revision = 'ab0c00000003'
branch_labels = None
depends_on = None


def upgrade():
    with op.get_context().autocommit_block():
        op.create_index(op.f('ix_harvests_frame_id'), 'harvests', ['frame_id'], unique=False,
                        postgresql_concurrently=True)


def downgrade():
    op.drop_index(op.f('ix_harvests_frame_id'), table_name='harvests')
