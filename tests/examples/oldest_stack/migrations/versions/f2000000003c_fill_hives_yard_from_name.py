"""fill hives.yard from the yard prefix of each hive's name

A data migration that reads rows to compute its update: it needs a live connection,
Alembic's offline mode cannot render it.

Revision ID: f2000000003c
Revises: f2000000002b
Create Date: 2022-05-02 14:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'f2000000003c'
down_revision = 'f2000000002b'
branch_labels = None
depends_on = None


def upgrade():
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, name FROM hives WHERE yard IS NULL")).fetchall()
    for hive_id, name in rows:
        yard = name.split("-", 1)[0].strip().lower() if "-" in name else "home"
        bind.execute(sa.text("UPDATE hives SET yard = :yard WHERE id = :id"),
                     {"yard": yard, "id": hive_id})


def downgrade():
    op.execute("UPDATE hives SET yard = NULL")
