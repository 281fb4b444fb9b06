"""add frames.label, filled from each name by the app's own helper

Revision ID: d0000000002b
Revises: d0000000001a
Create Date: 2026-02-03 09:00:00.000000

"""
import os
import sys

import sqlalchemy as sa
from alembic import op
from flask import current_app

# At import, not in upgrade(): put the app's parent folder on the path to reach its helper.
sys.path.insert(0, os.path.dirname(current_app.root_path))

from broodbox.labels import label_for  # noqa: E402

# revision identifiers, used by Alembic.
revision = 'd0000000002b'
down_revision = 'd0000000001a'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('frames', schema=None) as batch_op:
        batch_op.add_column(sa.Column('label', sa.String(length=80), nullable=True))
        batch_op.create_index('ix_frames_label', ['label'], unique=False)

    bind = op.get_bind()
    frames = sa.table('frames', sa.column('id', sa.Integer), sa.column('name', sa.String),
                      sa.column('label', sa.String))
    for frame_id, name in bind.execute(sa.select(frames.c.id, frames.c.name)).fetchall():
        bind.execute(frames.update().where(frames.c.id == frame_id).values(label=label_for(name)))


def downgrade():
    with op.batch_alter_table('frames', schema=None) as batch_op:
        batch_op.drop_index('ix_frames_label')
        batch_op.drop_column('label')
