"""create queen_cells, with a named enum column

Revision ID: b8000000004d
Revises: b8000000003c
Create Date: 2026-04-09 09:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b8000000004d'
down_revision = 'b8000000003c'
branch_labels = None
depends_on = None


def upgrade():
    # On PostgreSQL create_table also creates the type "cellstage".
    op.create_table(
        'queen_cells',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('stage', sa.Enum('OPEN', 'CAPPED', name='cellstage'), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade():
    # Drops the table by name only: on PostgreSQL the type "cellstage" stays behind, so
    # upgrading again fails with DuplicateObject.
    op.drop_table('queen_cells')
