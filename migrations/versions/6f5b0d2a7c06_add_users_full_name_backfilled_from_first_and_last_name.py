"""Add users.full_name backfilled from first and last name

Data-preserving, in three steps: add the column as nullable so existing rows
stay valid, fill it from first_name and last_name, then make it NOT NULL.
first_name and last_name are kept, so the downgrade only drops full_name.

Revision ID: 6f5b0d2a7c06
Revises: 5e4a9c1f6b05
Create Date: 2024-06-03 08:47:15.660392

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '6f5b0d2a7c06'
down_revision = '5e4a9c1f6b05'
branch_labels = None
depends_on = None


def upgrade():
    # 1. Nullable first: existing users have no full name yet.
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('full_name', sa.String(length=200), nullable=True))

    # 2. Backfill. A SQLAlchemy expression, so each database gets its own concatenation:
    #    `||` on SQLite and PostgreSQL, concat() on MySQL/MariaDB (where `||` means OR).
    users = sa.table(
        'users',
        sa.column('first_name', sa.String()),
        sa.column('last_name', sa.String()),
        sa.column('full_name', sa.String()),
    )
    op.execute(
        users.update().values(full_name=users.c.first_name + ' ' + users.c.last_name)
    )

    # 3. Every row has a value now: enforce it.
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.alter_column(
            'full_name', existing_type=sa.String(length=200), nullable=False
        )


def downgrade():
    # first_name and last_name were never touched: dropping full_name loses nothing.
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('full_name')
