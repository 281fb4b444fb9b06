"""add jars.harvested_on

Revision ID: a7000000002b
Revises: a7000000001a
Create Date: 2026-03-03 09:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'a7000000002b'
down_revision = 'a7000000001a'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('jars', schema=None) as batch_op:
        batch_op.add_column(sa.Column('harvested_on', sa.Date(), nullable=True))


def downgrade():
    with op.batch_alter_table('jars', schema=None) as batch_op:
        batch_op.drop_column('harvested_on')
