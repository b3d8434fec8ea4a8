"""program setup: partners' details, program settings as data, invites, password resets

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 14:20:28.311217
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import delivery.models

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('invites',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('invited_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', delivery.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', delivery.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('accepted_at', delivery.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', delivery.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['invited_by_id'], ['users.id'], name=op.f('fk_invites_invited_by_id_users')),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_invites_organization_id_organizations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invites')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_invites_token_hash'))
    )
    with op.batch_alter_table('invites', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invites_email'), ['email'], unique=False)

    op.create_table('password_resets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', delivery.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', delivery.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', delivery.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_password_resets_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_password_resets')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_password_resets_token_hash'))
    )
    with op.batch_alter_table('password_resets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_password_resets_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('address', sa.String(length=300), server_default='', nullable=False))
        batch_op.add_column(sa.Column('contacts', sa.String(length=500), server_default='', nullable=False))
        batch_op.add_column(sa.Column('box_types', sa.JSON(), server_default=sa.text("'[]'"), nullable=False))
        batch_op.add_column(sa.Column('require_upstairs', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('service_base_s', sa.Integer(), server_default='180', nullable=False))
        batch_op.add_column(sa.Column('service_per_box_s', sa.Integer(), server_default='30', nullable=False))
        batch_op.add_column(sa.Column('service_per_floor_s', sa.Integer(), server_default='60', nullable=False))
        batch_op.add_column(sa.Column('link_grace_hours', sa.Integer(), server_default='6', nullable=False))
        batch_op.add_column(sa.Column('waitlist_horizon_weeks', sa.Integer(), server_default='8', nullable=False))
        batch_op.add_column(sa.Column('staff_idle_minutes', sa.Integer(), server_default='15', nullable=False))
        batch_op.add_column(sa.Column('driver_idle_minutes', sa.Integer(), server_default='60', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.drop_column('driver_idle_minutes')
        batch_op.drop_column('staff_idle_minutes')
        batch_op.drop_column('waitlist_horizon_weeks')
        batch_op.drop_column('link_grace_hours')
        batch_op.drop_column('service_per_floor_s')
        batch_op.drop_column('service_per_box_s')
        batch_op.drop_column('service_base_s')
        batch_op.drop_column('require_upstairs')
        batch_op.drop_column('box_types')
        batch_op.drop_column('contacts')
        batch_op.drop_column('address')

    with op.batch_alter_table('password_resets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_password_resets_user_id'))

    op.drop_table('password_resets')
    with op.batch_alter_table('invites', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invites_email'))

    op.drop_table('invites')
