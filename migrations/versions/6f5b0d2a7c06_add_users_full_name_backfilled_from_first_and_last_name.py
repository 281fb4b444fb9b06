"""Add users.full_name backfilled from first and last name

Data-preserving, in three phases: add the column as nullable so existing rows
stay valid, fill it from first_name and last_name, then make it NOT NULL.
first_name and last_name are kept, so the downgrade only drops full_name.

users is large and busy, so the phases are online ones (softbee.runbook.online):
on PostgreSQL the fill runs in short keyset batches and NOT NULL goes through a
NOT VALID check, so the application keeps writing; a run killed half-way is
finished by the next one. Elsewhere, and offline, each phase is the plain
statement inside the migration's transaction.

Revision ID: 6f5b0d2a7c06
Revises: 5e4a9c1f6b05
Create Date: 2024-06-03 08:47:15.660392

"""
import sqlalchemy as sa
from alembic import op

from softbee.runbook import online

# revision identifiers, used by Alembic.
revision = '6f5b0d2a7c06'
down_revision = '5e4a9c1f6b05'
branch_labels = None
depends_on = None

# The columns the fill reads and writes. A SQLAlchemy expression, so each database gets its
# own concatenation: `||` on SQLite and PostgreSQL, concat() on MySQL/MariaDB (`||` is OR there).
users = sa.table(
    'users',
    sa.column('id', sa.Integer()),
    sa.column('first_name', sa.String()),
    sa.column('last_name', sa.String()),
    sa.column('full_name', sa.String()),
)


def add_nullable_full_name():
    # Nullable first: existing users have no full name yet.
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('full_name', sa.String(length=200), nullable=True))


def upgrade():
    online.run_phases(
        revision,
        online.ddl('add users.full_name, nullable', add_nullable_full_name),
        online.backfill(
            users,
            {'full_name': users.c.first_name + ' ' + users.c.last_name},
            where=users.c.full_name.is_(None),
        ),
        # Every row has a value now: enforce it.
        online.set_not_null('users', 'full_name', existing_type=sa.String(length=200)),
    )


def downgrade():
    # first_name and last_name were never touched: dropping full_name loses nothing.
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('full_name')
