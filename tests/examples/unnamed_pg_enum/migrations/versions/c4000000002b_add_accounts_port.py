"""Add accounts.port

Revision ID: c4000000002b
Revises: c4000000001a
Create Date: 2026-12-06 10:01:00

"""
import sqlalchemy as sa
from alembic import op

revision = "c4000000002b"
down_revision = "c4000000001a"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("accounts", sa.Column("port", sa.Integer(), nullable=True))


def downgrade():
    op.drop_column("accounts", "port")
