"""Create accounts and mail_stats

Revision ID: c4000000001a
Revises:
Create Date: 2026-12-06 10:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = "c4000000001a"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=120), nullable=False),
        sa.Column("protocol", sa.Enum("imap", "pop3", name="mail_protocol"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "mail_stats",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade():
    op.drop_table("mail_stats")
    op.drop_table("accounts")
    sa.Enum(name="mail_protocol").drop(op.get_bind(), checkfirst=True)
