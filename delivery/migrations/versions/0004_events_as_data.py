"""timeline events as data and the outbox

Events get a closed kind (checked), a JSON payload, a per-referral sequence and a recorded time;
their English sentence is no longer stored. Existing events are kept: their old kind is mapped to
the closed set and their sentence is kept in the payload (`{"old_kind", "message"}`), since no
structure can be recovered from free text; sequences follow (at, id). Old events get no outbox
rows: they were never due to be told, and telling them now would replay history to clinics.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 14:22:07.988296
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import delivery.models

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here (not imported from EventKind): a later migration that adds a kind changes the check.
KINDS = ('received', 'outcome', 'override', 'waitlisted', 'moved_off_waitlist', 'order_created',
         'order_changed', 'priority_changed', 'paused', 'resumed', 'ended', 'scheduled',
         'out_for_delivery', 'delivered', 'left_at_door', 'attempt_failed', 'rescheduled',
         'stop_removed', 'receipt_confirmed', 'receipt_denied', 'address_changed', 'review_resolved',
         'duplicate_checked', 'legacy')
OLD_KINDS = {
    'referred': 'received', 'outcome': 'outcome', 'outcome_overridden': 'override',
    'waitlist_promoted': 'moved_off_waitlist', 'order_created': 'order_created',
    'order_changed': 'order_changed', 'priority_changed': 'priority_changed', 'order_paused': 'paused',
    'order_resumed': 'resumed', 'order_ended': 'ended', 'referral_closed': 'ended',
    'delivered': 'delivered', 'delivery_failed': 'attempt_failed', 'stop_removed': 'stop_removed',
    'address_corrected': 'address_changed', 'review_resolved': 'review_resolved',
    'duplicate_checked': 'duplicate_checked',
}
"""Every kind the free-text timeline wrote; anything else becomes `legacy`, its old kind kept."""


def new_kind(old_kind: str, message: str) -> str:
    if old_kind == 'delivered' and message.endswith('(left at the door)'):
        return 'left_at_door'
    return OLD_KINDS.get(old_kind, 'legacy')


def upgrade() -> None:
    with op.batch_alter_table('referral_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sequence', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('data', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('recorded_at', delivery.models.base.UTCDateTime(timezone=True),
                                      nullable=True))

    # Old events were written when they happened; sequences number each referral's events by (at, id).
    op.execute("UPDATE referral_events SET recorded_at = at, sequence = ("
               "SELECT COUNT(*) FROM referral_events AS e WHERE e.referral_id = referral_events.referral_id"
               " AND (e.at < referral_events.at OR (e.at = referral_events.at AND e.id <= referral_events.id)))")
    events = sa.table('referral_events', sa.column('id', sa.Integer), sa.column('kind', sa.String),
                      sa.column('message', sa.String), sa.column('data', sa.JSON))
    bind = op.get_bind()
    rows = bind.execute(sa.select(events.c.id, events.c.kind, events.c.message)).all()
    if rows:
        bind.execute(events.update().where(events.c.id == sa.bindparam('event_id'))
                     .values(kind=sa.bindparam('new_kind'), data=sa.bindparam('new_data', type_=sa.JSON)),
                     [{'event_id': r.id, 'new_kind': new_kind(r.kind, r.message),
                       'new_data': {'old_kind': r.kind, 'message': r.message}} for r in rows])

    with op.batch_alter_table('referral_events', schema=None) as batch_op:
        batch_op.alter_column('sequence', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('data', existing_type=sa.JSON(), nullable=False)
        batch_op.alter_column('recorded_at', existing_type=delivery.models.base.UTCDateTime(timezone=True),
                              nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_referral_events_referral_id'),
                                          ['referral_id', 'sequence'])
        batch_op.create_check_constraint(
            'kind', "kind IN (" + ", ".join(f"'{k}'" for k in KINDS) + ")")
        batch_op.drop_column('message')

    op.create_table('outbox_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('webhook_id', sa.String(length=40), nullable=False),
    sa.Column('referral_id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', delivery.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', delivery.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.CheckConstraint("state IN ('pending', 'delivered', 'failed')", name=op.f('ck_outbox_messages_state')),
    sa.ForeignKeyConstraint(['clinic_id'], ['organizations.id'],
                            name=op.f('fk_outbox_messages_clinic_id_organizations')),
    sa.ForeignKeyConstraint(['event_id'], ['referral_events.id'],
                            name=op.f('fk_outbox_messages_event_id_referral_events')),
    sa.ForeignKeyConstraint(['referral_id'], ['referrals.id'],
                            name=op.f('fk_outbox_messages_referral_id_referrals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_messages')),
    sa.UniqueConstraint('event_id', name=op.f('uq_outbox_messages_event_id')),
    sa.UniqueConstraint('webhook_id', name=op.f('uq_outbox_messages_webhook_id'))
    )
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_messages_due', ['state', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_messages_referral_id'), ['referral_id'], unique=False)


def downgrade() -> None:
    """Back to free text: a migrated event gets its old kind and sentence back; a newer one keeps
    its kind and its payload as JSON text (the sentences are rendered by code, not stored)."""
    op.drop_table('outbox_messages')
    with op.batch_alter_table('referral_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('message', sa.VARCHAR(length=1000), nullable=True))
        batch_op.drop_constraint(batch_op.f('ck_referral_events_kind'), type_='check')  # old kinds come back
        batch_op.drop_constraint(batch_op.f('uq_referral_events_referral_id'), type_='unique')
    events = sa.table('referral_events', sa.column('id', sa.Integer), sa.column('kind', sa.String),
                      sa.column('message', sa.String), sa.column('data', sa.JSON))
    bind = op.get_bind()
    rows = bind.execute(sa.select(events.c.id, events.c.kind, events.c.data)).all()
    if rows:
        bind.execute(events.update().where(events.c.id == sa.bindparam('event_id'))
                     .values(kind=sa.bindparam('old_kind'), message=sa.bindparam('old_message')),
                     [{'event_id': r.id, 'old_kind': r.data.get('old_kind', r.kind),
                       'old_message': str(r.data.get('message') or json.dumps(r.data))[:1000]}
                      for r in rows])
    with op.batch_alter_table('referral_events', schema=None) as batch_op:
        batch_op.alter_column('message', existing_type=sa.VARCHAR(length=1000), nullable=False)
        batch_op.drop_column('recorded_at')
        batch_op.drop_column('data')
        batch_op.drop_column('sequence')
