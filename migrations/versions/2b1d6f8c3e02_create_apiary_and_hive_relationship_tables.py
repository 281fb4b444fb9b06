"""Create apiary and hive relationship tables

A user owns apiaries; an apiary holds hives numbered uniquely within it.

Revision ID: 2b1d6f8c3e02
Revises: 1a0c5e7b2d01
Create Date: 2024-03-11 14:40:02.530961

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '2b1d6f8c3e02'
down_revision = '1a0c5e7b2d01'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'apiaries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('owner_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('location', sa.String(length=255), nullable=True),
        sa.Column('latitude', sa.Float(), nullable=True),
        sa.Column('longitude', sa.Float(), nullable=True),
        sa.Column('notes', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(), server_default=sa.func.now(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ['owner_id'], ['users.id'],
            name=op.f('fk_apiaries_owner_id_users'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_apiaries')),
    )
    with op.batch_alter_table('apiaries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_apiaries_owner_id'), ['owner_id'], unique=False)

    op.create_table(
        'hives',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('apiary_id', sa.Integer(), nullable=False),
        sa.Column('hive_number', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=20), server_default='active', nullable=False),
        sa.Column('created_at', sa.DateTime(), server_default=sa.func.now(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ['apiary_id'], ['apiaries.id'],
            name=op.f('fk_hives_apiary_id_apiaries'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_hives')),
        sa.UniqueConstraint(
            'apiary_id', 'hive_number', name=op.f('uq_hives_apiary_id_hive_number')
        ),
    )
    with op.batch_alter_table('hives', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hives_apiary_id'), ['apiary_id'], unique=False)


def downgrade():
    # DROP TABLE takes the table's indexes with it on every database. Dropping the
    # index first fails on MySQL/MariaDB, where it backs a foreign key (error 1553).
    # hives refers to apiaries, so it goes first.
    op.drop_table('hives')
    op.drop_table('apiaries')
