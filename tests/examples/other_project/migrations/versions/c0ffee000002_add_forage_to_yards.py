"""Add forage to yards

Revision ID: c0ffee000002
Revises: c0ffee000001
Create Date: 2024-05-02 09:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'c0ffee000002'
down_revision = 'c0ffee000001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('yards', schema=None) as batch_op:
        batch_op.add_column(sa.Column('forage', sa.String(length=200), nullable=True))


def downgrade():
    with op.batch_alter_table('yards', schema=None) as batch_op:
        batch_op.drop_column('forage')
