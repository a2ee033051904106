"""Callbacks point at the contact of their latest dial-now attempt.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 16:15:00.000000
"""

from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('callbacks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_attempt_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                                      nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_callbacks_last_attempt_id_interactions'), 'interactions',
                                    ['last_attempt_id'], ['id'], ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('callbacks', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_callbacks_last_attempt_id_interactions'), type_='foreignkey')
        batch_op.drop_column('last_attempt_id')
