"""Create inspections table for hive health checks

One row per hive visit: who inspected, when, and what they saw. This becomes
the largest table of the application.

Revision ID: 4d3f8b0e5a04
Revises: 3c2e7a9d4f03
Create Date: 2024-04-22 16:31:09.447205

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '4d3f8b0e5a04'
down_revision = '3c2e7a9d4f03'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'inspections',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('hive_id', sa.Integer(), nullable=False),
        sa.Column('inspector_id', sa.Integer(), nullable=True),
        sa.Column('inspected_at', sa.DateTime(), nullable=False),
        sa.Column('queen_seen', sa.Boolean(), nullable=False),
        sa.Column('eggs_seen', sa.Boolean(), nullable=False),
        sa.Column('brood_frames', sa.Integer(), nullable=True),
        sa.Column('honey_frames', sa.Integer(), nullable=True),
        sa.Column('temperament', sa.String(length=20), nullable=True),
        sa.Column('notes', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ['hive_id'], ['hives.id'],
            name=op.f('fk_inspections_hive_id_hives'), ondelete='CASCADE',
        ),
        sa.ForeignKeyConstraint(
            ['inspector_id'], ['users.id'],
            name=op.f('fk_inspections_inspector_id_users'), ondelete='SET NULL',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_inspections')),
    )
    with op.batch_alter_table('inspections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inspections_hive_id'), ['hive_id'], unique=False)
        batch_op.create_index(
            batch_op.f('ix_inspections_inspector_id'), ['inspector_id'], unique=False
        )


def downgrade():
    # DROP TABLE takes the table's indexes with it on every database. Dropping the
    # index first fails on MySQL/MariaDB, where it backs a foreign key (error 1553).
    op.drop_table('inspections')
