"""Create treatments table for varroa and disease treatments

Once mite counts are recorded, the treatments that follow them are too: one row
per treatment course on a hive, with the product, its target and dose.

Revision ID: 8b7d2f4c9e08
Revises: 7a6c1e3b8d07
Create Date: 2024-08-05 15:09:44.874150

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '8b7d2f4c9e08'
down_revision = '7a6c1e3b8d07'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'treatments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('hive_id', sa.Integer(), nullable=False),
        sa.Column('applied_by_id', sa.Integer(), nullable=True),
        sa.Column('product', sa.String(length=120), nullable=False),
        sa.Column('target', sa.String(length=40), server_default='varroa', nullable=False),
        sa.Column('dose', sa.String(length=60), nullable=True),
        sa.Column('started_at', sa.DateTime(), nullable=False),
        sa.Column('ended_at', sa.DateTime(), nullable=True),
        sa.Column('notes', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ['applied_by_id'], ['users.id'],
            name=op.f('fk_treatments_applied_by_id_users'), ondelete='SET NULL',
        ),
        sa.ForeignKeyConstraint(
            ['hive_id'], ['hives.id'],
            name=op.f('fk_treatments_hive_id_hives'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_treatments')),
    )
    with op.batch_alter_table('treatments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_treatments_hive_id'), ['hive_id'], unique=False)


def downgrade():
    # DROP TABLE takes the table's indexes with it on every database. Dropping the
    # index first fails on MySQL/MariaDB, where it backs a foreign key (error 1553).
    op.drop_table('treatments')
