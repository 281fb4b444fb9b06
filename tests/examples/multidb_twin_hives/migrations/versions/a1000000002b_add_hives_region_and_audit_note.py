"""add hives region and audit note

Revision ID: a1000000002b
Revises: a1000000001a
Create Date: 2026-12-06 12:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'a1000000002b'
down_revision = 'a1000000001a'
branch_labels = None
depends_on = None


def upgrade(engine_name):
    globals()["upgrade_%s" % engine_name]()


def downgrade(engine_name):
    globals()["downgrade_%s" % engine_name]()


def upgrade_():
    with op.batch_alter_table('hives', schema=None) as batch_op:
        batch_op.add_column(sa.Column('region', sa.String(length=40), nullable=True))


def downgrade_():
    with op.batch_alter_table('hives', schema=None) as batch_op:
        batch_op.drop_column('region')


def upgrade_audit():
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('note', sa.String(length=200), nullable=True))


def downgrade_audit():
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_column('note')
