"""webhooks: endpoints, deliveries and attempts; failed attempts held for review

Each outbox message is handed to every endpoint of its clinic that wants its kind
(`webhook_deliveries`, retried until 2xx); every HTTP request is kept (`webhook_attempts`).
Messages written before this revision are marked dispatched: there was no endpoint to tell.
A program setting says after how many failed attempts in a row an order waits for review, and
the event kind `held_for_review` tells it.

Revision ID: 0012
Revises: 0005
Create Date: 2026-12-01 14:40:46.472956
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import delivery.models

revision: str = '0012'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here (not imported from EventKind), as in 0004.
KINDS_BEFORE = ('received', 'outcome', 'override', 'waitlisted', 'moved_off_waitlist', 'order_created',
                'order_changed', 'priority_changed', 'paused', 'resumed', 'ended', 'scheduled',
                'out_for_delivery', 'delivered', 'left_at_door', 'attempt_failed', 'rescheduled',
                'stop_removed', 'receipt_confirmed', 'receipt_denied', 'address_changed', 'review_resolved',
                'duplicate_checked', 'legacy')
KINDS = (*KINDS_BEFORE, 'held_for_review')


def _kinds_check(kinds: tuple[str, ...]) -> None:
    with op.batch_alter_table('referral_events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_referral_events_kind'), type_='check')
        batch_op.create_check_constraint('kind', f"kind IN ({', '.join(repr(k) for k in kinds)})")


def upgrade() -> None:
    op.create_table('webhook_endpoints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('secret', sa.String(length=100), nullable=False),
    sa.Column('previous_secret', sa.String(length=100), nullable=True),
    sa.Column('previous_secret_until', delivery.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('event_kinds', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('failing_since', delivery.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('notice', sa.String(length=500), nullable=True),
    sa.Column('created_at', delivery.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['clinic_id'], ['organizations.id'], name=op.f('fk_webhook_endpoints_clinic_id_organizations')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_webhook_endpoints_created_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_endpoints'))
    )
    with op.batch_alter_table('webhook_endpoints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_endpoints_clinic_id'), ['clinic_id'], unique=False)

    op.create_table('webhook_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('endpoint_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', delivery.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', delivery.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('created_at', delivery.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], name=op.f('fk_webhook_deliveries_endpoint_id_webhook_endpoints')),
    sa.ForeignKeyConstraint(['message_id'], ['outbox_messages.id'], name=op.f('fk_webhook_deliveries_message_id_outbox_messages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
    sa.UniqueConstraint('message_id', 'endpoint_id', name=op.f('uq_webhook_deliveries_message_id'))
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_deliveries_due', ['state', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_endpoint_id'), ['endpoint_id'], unique=False)

    op.create_table('webhook_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=False),
    sa.Column('endpoint_id', sa.Integer(), nullable=False),
    sa.Column('at', delivery.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('latency_ms', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('test', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['webhook_deliveries.id'], name=op.f('fk_webhook_attempts_delivery_id_webhook_deliveries')),
    sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], name=op.f('fk_webhook_attempts_endpoint_id_webhook_endpoints')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_attempts'))
    )
    with op.batch_alter_table('webhook_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_attempts_delivery_id'), ['delivery_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_attempts_endpoint_id'), ['endpoint_id'], unique=False)

    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('max_failed_attempts', sa.Integer(), server_default='2', nullable=False))

    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dispatched_at', delivery.models.base.UTCDateTime(timezone=True), nullable=True))
    op.execute("UPDATE outbox_messages SET dispatched_at = created_at")
    _kinds_check(KINDS)


def downgrade() -> None:
    op.execute("DELETE FROM outbox_messages WHERE event_id IN "
               "(SELECT id FROM referral_events WHERE kind = 'held_for_review')")
    op.execute("DELETE FROM referral_events WHERE kind = 'held_for_review'")
    _kinds_check(KINDS_BEFORE)
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_column('dispatched_at')

    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.drop_column('max_failed_attempts')

    with op.batch_alter_table('webhook_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_attempts_endpoint_id'))
        batch_op.drop_index(batch_op.f('ix_webhook_attempts_delivery_id'))

    op.drop_table('webhook_attempts')
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_deliveries_endpoint_id'))
        batch_op.drop_index('ix_webhook_deliveries_due')

    op.drop_table('webhook_deliveries')
    with op.batch_alter_table('webhook_endpoints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_endpoints_clinic_id'))

    op.drop_table('webhook_endpoints')
