"""create frames

Revision ID: d0000000001a
Revises:
Create Date: 2026-02-02 09:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'd0000000001a'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'frames',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade():
    op.drop_table('frames')
