"""index hives.yard (named by the database it runs on)

Reads ``bind.engine.url`` to choose what to do: it needs a live connection, Alembic's
offline mode cannot render it.

Revision ID: f2000000004d
Revises: f2000000003c
Create Date: 2022-06-20 08:15:00.000000

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = 'f2000000004d'
down_revision = 'f2000000003c'
branch_labels = None
depends_on = None


def upgrade():
    bind = op.get_bind()
    if bind.engine.url.get_backend_name() == "sqlite":
        with op.batch_alter_table('hives', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_hives_yard'), ['yard'], unique=False)
    else:
        op.create_index(op.f('ix_hives_yard'), 'hives', ['yard'], unique=False)


def downgrade():
    with op.batch_alter_table('hives', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_hives_yard'))
