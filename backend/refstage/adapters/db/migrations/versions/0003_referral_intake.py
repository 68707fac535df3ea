"""referral intake

Public form submissions stored with one write before the answer; the worker turns them into referrals.
Hand-written; batch-mode friendly.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 20:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'referral_intake',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('tenant_id', sa.String(length=36), nullable=False),
        sa.Column('program_id', sa.String(length=36), nullable=False),
        sa.Column('advocate_id', sa.String(length=36), nullable=False),
        sa.Column('code', sa.String(length=32), nullable=False),
        sa.Column('friend', sa.JSON(), nullable=False),
        sa.Column('consent_version', sa.String(length=40), nullable=False),
        sa.Column('client', sa.String(length=64), nullable=True),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('referral_id', sa.String(length=36), nullable=True),
        sa.Column('refused_reason', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_referral_intake_tenant_id_tenants'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_referral_intake')),
    )
    with op.batch_alter_table('referral_intake', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_referral_intake_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index('ix_referral_intake_pending', ['processed_at', 'received_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('referral_intake', schema=None) as batch_op:
        batch_op.drop_index('ix_referral_intake_pending')
        batch_op.drop_index(batch_op.f('ix_referral_intake_tenant_id'))
    op.drop_table('referral_intake')
