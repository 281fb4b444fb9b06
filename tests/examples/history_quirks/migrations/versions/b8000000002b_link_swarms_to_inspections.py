"""link swarms to inspections (an unnamed foreign key)

Revision ID: b8000000002b
Revises: b8000000001a
Create Date: 2026-04-07 09:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b8000000002b'
down_revision = 'b8000000001a'
branch_labels = None
depends_on = None


def upgrade():
    # The database names the constraint (swarms_inspection_id_fkey on PostgreSQL).
    with op.batch_alter_table('swarms', schema=None) as batch_op:
        batch_op.add_column(sa.Column('inspection_id', sa.Integer(),
                                      sa.ForeignKey('inspections.id'), nullable=True))


def downgrade():
    # As autogenerate wrote it and nobody adjusted it: a constraint without a name cannot be
    # dropped, so this downgrade raises before it runs any SQL, on every dialect (TypeError,
    # AssertionError or NotImplementedError, by dialect and SQLAlchemy version).
    op.drop_constraint(None, 'swarms', type_='foreignkey')
    op.drop_column('swarms', 'inspection_id')
