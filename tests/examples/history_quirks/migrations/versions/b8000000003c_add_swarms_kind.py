"""add swarms.kind from the app's enum; rebuild swarms with AUTOINCREMENT on SQLite

Revision ID: b8000000003c
Revises: b8000000002b
Create Date: 2026-04-08 09:00:00.000000

"""
import sqlalchemy as sa
from alembic import op
from swarmlog.models import SwarmKind

# revision identifiers, used by Alembic.
revision = 'b8000000003c'
down_revision = 'b8000000002b'
branch_labels = None
depends_on = None


def upgrade():
    bind = op.get_bind()
    kind = sa.Enum(SwarmKind)
    kind.create(bind, checkfirst=True)
    op.add_column('swarms', sa.Column('kind', kind, nullable=False,
                                      server_default=SwarmKind.UNKNOWN.name))
    if bind.engine.name == 'sqlite':
        with op.batch_alter_table('swarms', recreate='always',
                                  table_kwargs={'sqlite_autoincrement': True}):
            pass


def downgrade():
    bind = op.get_bind()
    with op.batch_alter_table('swarms', schema=None) as batch_op:
        batch_op.drop_column('kind')
    sa.Enum(SwarmKind).drop(bind, checkfirst=True)
    if bind.engine.name == 'sqlite':
        with op.batch_alter_table('swarms', recreate='always',
                                  table_kwargs={'sqlite_autoincrement': False}):
            pass
