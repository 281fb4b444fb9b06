"""create swarms and inspections

Revision ID: b8000000001a
Revises:
Create Date: 2026-04-06 09:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b8000000001a'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'swarms',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('caught_at', sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_table(
        'inspections',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('note', sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade():
    op.drop_table('inspections')
    op.drop_table('swarms')
