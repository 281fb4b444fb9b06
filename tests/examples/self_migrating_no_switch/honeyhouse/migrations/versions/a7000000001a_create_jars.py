"""create jars

Revision ID: a7000000001a
Revises:
Create Date: 2026-03-02 09:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'a7000000001a'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'jars',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('batch', sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade():
    op.drop_table('jars')
