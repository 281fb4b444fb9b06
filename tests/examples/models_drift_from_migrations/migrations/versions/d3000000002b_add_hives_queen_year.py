"""Add hives.queen_year and its index

Revision ID: d3000000002b
Revises: d3000000001a
Create Date: 2026-12-06 10:01:00

"""
import sqlalchemy as sa
from alembic import op

revision = "d3000000002b"
down_revision = "d3000000001a"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("hives", sa.Column("queen_year", sa.Integer(), nullable=True))
    op.create_index("ix_hives_queen_year", "hives", ["queen_year"], unique=False)


def downgrade():
    op.drop_index("ix_hives_queen_year", table_name="hives")
    op.drop_column("hives", "queen_year")
