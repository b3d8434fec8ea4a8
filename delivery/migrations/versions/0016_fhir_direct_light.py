"""FHIR: the program's choice to answer a waitlisted referral as a rejected Task; Direct Light
connections to clinics' FHIR servers and the Tasks read from them

Existing programs keep answering accepted/waitlisted. A remote Task is taken once per connection
(unique connection + Task id).

Revision ID: 0016
Revises: 0013
Create Date: 2026-12-01 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import delivery.models.base

revision: str = '0016'
down_revision: str | None = '0019'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('waitlisted_is_rejected', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
    op.create_table('fhir_connections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('base_url', sa.String(length=500), nullable=False),
    sa.Column('owner_reference', sa.String(length=200), nullable=False),
    sa.Column('bearer_token', sa.String(length=2000), nullable=True),
    sa.Column('token_url', sa.String(length=500), nullable=True),
    sa.Column('client_id', sa.String(length=200), nullable=True),
    sa.Column('private_jwk', sa.JSON(), nullable=True),
    sa.Column('scope', sa.String(length=500), nullable=True),
    sa.Column('interval_minutes', sa.Integer(), nullable=False),
    sa.Column('hours_start', sa.Integer(), nullable=False),
    sa.Column('hours_end', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('cursor', sa.String(length=40), nullable=True),
    sa.Column('last_success_at', delivery.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('last_error_at', delivery.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('next_poll_at', delivery.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', delivery.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['organizations.id'], name=op.f('fk_fhir_connections_clinic_id_organizations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fhir_connections'))
    )
    with op.batch_alter_table('fhir_connections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fhir_connections_clinic_id'), ['clinic_id'], unique=False)

    op.create_table('fhir_remote_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('connection_id', sa.Integer(), nullable=False),
    sa.Column('remote_id', sa.String(length=64), nullable=False),
    sa.Column('patient_reference', sa.String(length=200), nullable=False),
    sa.Column('request_reference', sa.String(length=200), nullable=False),
    sa.Column('referral_id', sa.Integer(), nullable=True),
    sa.Column('refusal', sa.String(length=1000), nullable=True),
    sa.Column('written', sa.String(length=1200), nullable=True),
    sa.Column('procedures', sa.JSON(), nullable=False),
    sa.Column('created_at', delivery.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['fhir_connections.id'], name=op.f('fk_fhir_remote_tasks_connection_id_fhir_connections')),
    sa.ForeignKeyConstraint(['referral_id'], ['referrals.id'], name=op.f('fk_fhir_remote_tasks_referral_id_referrals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fhir_remote_tasks')),
    sa.UniqueConstraint('connection_id', 'remote_id', name=op.f('uq_fhir_remote_tasks_connection_id'))
    )
    with op.batch_alter_table('fhir_remote_tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fhir_remote_tasks_connection_id'), ['connection_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('fhir_remote_tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fhir_remote_tasks_connection_id'))

    op.drop_table('fhir_remote_tasks')
    with op.batch_alter_table('fhir_connections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fhir_connections_clinic_id'))

    op.drop_table('fhir_connections')
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.drop_column('waitlisted_is_rejected')
