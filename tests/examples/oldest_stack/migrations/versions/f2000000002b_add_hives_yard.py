"""add hives.yard

Revision ID: f2000000002b
Revises: f2000000001a
Create Date: 2022-04-11 10:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'f2000000002b'
down_revision = 'f2000000001a'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('hives', schema=None) as batch_op:
        batch_op.add_column(sa.Column('yard', sa.String(length=40), nullable=True))


def downgrade():
    with op.batch_alter_table('hives', schema=None) as batch_op:
        batch_op.drop_column('yard')
