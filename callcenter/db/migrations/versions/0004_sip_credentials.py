"""Registering phones' digest credentials (HA1 only).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08 02:00:00.000000
"""

from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sip_credentials',
        sa.Column('agent_id', sa.String(length=32), nullable=False),
        sa.Column('username', sa.String(length=64), nullable=False),
        sa.Column('realm', sa.String(length=64), nullable=False),
        sa.Column('ha1', sa.String(length=64), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_sip_credentials_agent_id_agents'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('agent_id', name=op.f('pk_sip_credentials')),
        sa.UniqueConstraint('username', name=op.f('uq_sip_credentials_username')),
    )


def downgrade() -> None:
    op.drop_table('sip_credentials')
