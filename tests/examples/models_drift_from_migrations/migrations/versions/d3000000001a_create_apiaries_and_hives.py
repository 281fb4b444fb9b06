"""Create apiaries and hives

Revision ID: d3000000001a
Revises:
Create Date: 2026-12-06 10:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = "d3000000001a"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "apiaries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "hives",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("apiary_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(["apiary_id"], ["apiaries.id"]),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade():
    op.drop_table("hives")
    op.drop_table("apiaries")
