"""Create harvests

Revision ID: ab0c00000003
Revises: ab0c00000002
Create Date: 2026-11-04 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'ab0c00000003'
down_revision = 'ab0c00000002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'harvests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('frame_id', sa.Integer(), nullable=False),
        sa.Column('kg', sa.Numeric(precision=6, scale=2), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade():
    op.drop_table('harvests')
