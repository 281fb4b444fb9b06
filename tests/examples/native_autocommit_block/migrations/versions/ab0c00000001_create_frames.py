"""Create frames

Revision ID: ab0c00000001
Revises:
Create Date: 2026-11-02 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'ab0c00000001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'frames',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('hive', sa.String(length=40), nullable=False),
        sa.Column('weight_g', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade():
    op.drop_table('frames')
