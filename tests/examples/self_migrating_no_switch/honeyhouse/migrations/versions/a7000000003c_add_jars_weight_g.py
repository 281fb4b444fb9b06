"""add jars.weight_g

Revision ID: a7000000003c
Revises: a7000000002b
Create Date: 2026-03-04 09:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'a7000000003c'
down_revision = 'a7000000002b'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('jars', schema=None) as batch_op:
        batch_op.add_column(sa.Column('weight_g', sa.Integer(), nullable=False, server_default='0'))


def downgrade():
    with op.batch_alter_table('jars', schema=None) as batch_op:
        batch_op.drop_column('weight_g')
