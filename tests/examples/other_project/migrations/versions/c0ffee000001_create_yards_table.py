"""Create yards table

Revision ID: c0ffee000001
Revises:
Create Date: 2024-05-01 09:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'c0ffee000001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'yards',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade():
    op.drop_table('yards')
