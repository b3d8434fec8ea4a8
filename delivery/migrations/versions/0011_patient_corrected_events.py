"""timeline kind patient_corrected

A re-sent referral that changes a patient's stored details (phone, floor, address, ...) records
`patient_corrected` with each detail's before and after, so the kind CHECK gains it.

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-01 15:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here (not imported from EventKind), as in 0004: the kinds 0012 left, then the new one.
KINDS_BEFORE = ('received', 'outcome', 'override', 'waitlisted', 'moved_off_waitlist', 'order_created',
                'order_changed', 'priority_changed', 'paused', 'resumed', 'ended', 'scheduled',
                'out_for_delivery', 'delivered', 'left_at_door', 'attempt_failed', 'rescheduled',
                'stop_removed', 'receipt_confirmed', 'receipt_denied', 'address_changed', 'review_resolved',
                'duplicate_checked', 'legacy', 'held_for_review')
KINDS = (*KINDS_BEFORE, 'patient_corrected')


def _check(kinds: Sequence[str]) -> str:
    return "kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"


def upgrade() -> None:
    with op.batch_alter_table('referral_events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_referral_events_kind'), type_='check')
        batch_op.create_check_constraint('kind', _check(KINDS))


def _sentence(data: dict) -> str:
    """The event's sentence as it read when written (the old check has no place for the kind)."""
    changes = []
    for c in data.get('changes', []):
        said = f"{c['field'].replace('_', ' ')} {c.get('before') or '(none)'} → {c.get('after') or '(none)'}"
        changes.append(said if c.get('applied', True) else f"{said} (proposed for review)")
    return (f"Patient details corrected by a re-sent referral ({data.get('source')}): "
            + "; ".join(changes) + ".")


def downgrade() -> None:
    """`patient_corrected` events become `legacy` ones that keep their sentence (the kind the
    timeline of 0004 shows as written), so nothing recorded is lost."""
    events = sa.table('referral_events', sa.column('id', sa.Integer), sa.column('kind', sa.String),
                      sa.column('data', sa.JSON))
    bind = op.get_bind()
    rows = bind.execute(sa.select(events.c.id, events.c.data)
                        .where(events.c.kind == 'patient_corrected')).all()
    if rows:
        bind.execute(events.update().where(events.c.id == sa.bindparam('event_id'))
                     .values(kind='legacy', data=sa.bindparam('new_data', type_=sa.JSON)),
                     [{'event_id': r.id, 'new_data': {'old_kind': 'patient_corrected',
                                                      'message': _sentence(r.data)}} for r in rows])
    with op.batch_alter_table('referral_events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_referral_events_kind'), type_='check')
        batch_op.create_check_constraint('kind', _check(KINDS_BEFORE))
