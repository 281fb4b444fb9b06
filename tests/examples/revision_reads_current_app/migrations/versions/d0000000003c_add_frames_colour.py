"""add frames.colour, its default read from the app's config

Revision ID: d0000000003c
Revises: d0000000002b
Create Date: 2026-02-04 09:00:00.000000

"""
import sqlalchemy as sa
from alembic import op
from flask import current_app

# revision identifiers, used by Alembic.
revision = 'd0000000003c'
down_revision = 'd0000000002b'
branch_labels = None
depends_on = None

# At import: the app's setting, read once when Alembic loads this script.
DEFAULT_COLOUR = current_app.config.get('BROODBOX_DEFAULT_COLOUR', 'amber')


def upgrade():
    with op.batch_alter_table('frames', schema=None) as batch_op:
        batch_op.add_column(sa.Column('colour', sa.String(length=20), nullable=False,
                                      server_default=DEFAULT_COLOUR))


def downgrade():
    with op.batch_alter_table('frames', schema=None) as batch_op:
        batch_op.drop_column('colour')
