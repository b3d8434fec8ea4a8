"""FHIR: the Task that stands for a referral sent as a Bundle, and SMART Backend Services clients

fhir_tasks ties a referral to the clinic's ServiceRequest identifier (a re-sent Bundle finds it);
fhir_clients, fhir_access_tokens and fhir_assertion_uses hold system clients' keys, their short-lived
tokens and the assertion ids already used.

Revision ID: 0013
Revises: 0009
Create Date: 2026-12-01 14:52:19.934408
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import delivery.models

revision: str = '0013'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('fhir_clients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.String(length=100), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('jwks', sa.JSON(), nullable=False),
    sa.Column('jku', sa.String(length=500), nullable=True),
    sa.Column('scopes', sa.String(length=500), nullable=False),
    sa.Column('created_at', delivery.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', delivery.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['clinic_id'], ['organizations.id'], name=op.f('fk_fhir_clients_clinic_id_organizations')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_fhir_clients_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fhir_clients')),
    sa.UniqueConstraint('client_id', name=op.f('uq_fhir_clients_client_id')),
    sa.UniqueConstraint('user_id', name=op.f('uq_fhir_clients_user_id'))
    )
    op.create_table('fhir_access_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('client_pk', sa.Integer(), nullable=False),
    sa.Column('scopes', sa.String(length=500), nullable=False),
    sa.Column('expires_at', delivery.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_pk'], ['fhir_clients.id'], name=op.f('fk_fhir_access_tokens_client_pk_fhir_clients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fhir_access_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_fhir_access_tokens_token_hash'))
    )
    with op.batch_alter_table('fhir_access_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fhir_access_tokens_client_pk'), ['client_pk'], unique=False)

    op.create_table('fhir_assertion_uses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_pk', sa.Integer(), nullable=False),
    sa.Column('jti', sa.String(length=200), nullable=False),
    sa.Column('expires_at', delivery.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_pk'], ['fhir_clients.id'], name=op.f('fk_fhir_assertion_uses_client_pk_fhir_clients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fhir_assertion_uses')),
    sa.UniqueConstraint('client_pk', 'jti', name=op.f('uq_fhir_assertion_uses_client_pk'))
    )
    with op.batch_alter_table('fhir_assertion_uses', schema=None) as batch_op:
        batch_op.create_index('ix_fhir_assertion_uses_expires', ['expires_at'], unique=False)

    op.create_table('fhir_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('referral_id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('request_identifier', sa.String(length=400), nullable=False),
    sa.Column('service_request', sa.JSON(), nullable=False),
    sa.Column('created_at', delivery.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['organizations.id'], name=op.f('fk_fhir_tasks_clinic_id_organizations')),
    sa.ForeignKeyConstraint(['referral_id'], ['referrals.id'], name=op.f('fk_fhir_tasks_referral_id_referrals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fhir_tasks')),
    sa.UniqueConstraint('clinic_id', 'request_identifier', name=op.f('uq_fhir_tasks_clinic_id')),
    sa.UniqueConstraint('referral_id', name=op.f('uq_fhir_tasks_referral_id'))
    )


def downgrade() -> None:
    op.drop_table('fhir_tasks')
    with op.batch_alter_table('fhir_assertion_uses', schema=None) as batch_op:
        batch_op.drop_index('ix_fhir_assertion_uses_expires')

    op.drop_table('fhir_assertion_uses')
    with op.batch_alter_table('fhir_access_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fhir_access_tokens_client_pk'))

    op.drop_table('fhir_access_tokens')
    op.drop_table('fhir_clients')
