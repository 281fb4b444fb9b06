"""Create colonies with a two-value status

Revision ID: d3000000001a
Revises:
Create Date: 2026-12-06 10:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

revision = 'd3000000001a'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'colonies',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('status', sa.Enum('active', 'queenless', name='colony_status'), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade():
    op.drop_table('colonies')
    sa.Enum(name='colony_status').drop(op.get_bind(), checkfirst=True)
