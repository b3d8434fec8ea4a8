"""partnerships and referral allocations: the agreement per clinic, when each order was placed and
accepted (program dates, which a weekly allocation counts), why it waits, and the lending setting

Revision ID: 0017
Revises: 0013
Create Date: 2026-12-01 17:16:37.446595
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import delivery.models

revision: str = '0017'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('partnerships',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('food_bank_id', sa.Integer(), nullable=False),
    sa.Column('allocation', sa.Integer(), nullable=False),
    sa.Column('unit', sa.String(length=20), nullable=False),
    sa.Column('delivery_days', sa.JSON(), nullable=False),
    sa.Column('days_to_first_box', sa.Integer(), nullable=False),
    sa.Column('food_bank_contact', sa.String(length=300), nullable=False),
    sa.Column('clinic_contact', sa.String(length=300), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('review_on', sa.Date(), nullable=True),
    sa.Column('updated_at', delivery.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('allocation >= 0', name=op.f('ck_partnerships_allocation')),
    sa.ForeignKeyConstraint(['clinic_id'], ['organizations.id'], name=op.f('fk_partnerships_clinic_id_organizations')),
    sa.ForeignKeyConstraint(['food_bank_id'], ['organizations.id'], name=op.f('fk_partnerships_food_bank_id_organizations')),
    sa.ForeignKeyConstraint(['updated_by_id'], ['users.id'], name=op.f('fk_partnerships_updated_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_partnerships')),
    sa.UniqueConstraint('clinic_id', name=op.f('uq_partnerships_clinic_id'))
    )
    with op.batch_alter_table('partnerships', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_partnerships_food_bank_id'), ['food_bank_id'], unique=False)

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('placed_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('accepted_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('waitlist_reason', sa.String(length=12), nullable=True))
        batch_op.create_index(batch_op.f('ix_orders_accepted_on'), ['accepted_on'], unique=False)

    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lend_allocation', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.drop_column('lend_allocation')

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_orders_accepted_on'))
        batch_op.drop_column('waitlist_reason')
        batch_op.drop_column('accepted_on')
        batch_op.drop_column('placed_on')

    with op.batch_alter_table('partnerships', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_partnerships_food_bank_id'))

    op.drop_table('partnerships')
