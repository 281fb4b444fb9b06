"""Add email verification fields to user model

Existing users start unverified (server default false); the token and the
verification time stay empty until they confirm their address.

Revision ID: 3c2e7a9d4f03
Revises: 2b1d6f8c3e02
Create Date: 2024-04-02 10:05:47.902114

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '3c2e7a9d4f03'
down_revision = '2b1d6f8c3e02'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('email_verified', sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column('email_verification_token', sa.String(length=64), nullable=True)
        )
        batch_op.add_column(sa.Column('email_verified_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('email_verified_at')
        batch_op.drop_column('email_verification_token')
        batch_op.drop_column('email_verified')
