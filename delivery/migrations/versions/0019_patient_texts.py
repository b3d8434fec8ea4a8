"""patient texts: messages to patients in their language, their replies, consent and opt-out

Texts go out only for patients who agreed (`text_consent`) and never after an opt-out reply
(`texts_stopped_at`); each program turns texting on itself (`texts_enabled`, off for everyone).

Revision ID: 0019
Revises: 0013
Create Date: 2026-12-01 17:16:47.942718
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import delivery.models

revision: str = '0019'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('text_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('food_bank_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('stop_id', sa.Integer(), nullable=True),
    sa.Column('about', sa.String(length=60), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('body', sa.String(length=480), nullable=False),
    sa.Column('to_number', sa.String(length=20), nullable=True),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('send_after', delivery.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('provider_sid', sa.String(length=64), nullable=True),
    sa.Column('error_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.String(length=300), nullable=True),
    sa.Column('reply', sa.String(length=12), nullable=True),
    sa.Column('created_at', delivery.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', delivery.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['food_bank_id'], ['organizations.id'], name=op.f('fk_text_messages_food_bank_id_organizations')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_text_messages_patient_id_patients')),
    sa.ForeignKeyConstraint(['stop_id'], ['stops.id'], name=op.f('fk_text_messages_stop_id_stops'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_text_messages')),
    sa.UniqueConstraint('about', name=op.f('uq_text_messages_about')),
    sa.UniqueConstraint('provider_sid', name=op.f('uq_text_messages_provider_sid'))
    )
    with op.batch_alter_table('text_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_text_messages_food_bank_id'), ['food_bank_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_text_messages_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index('ix_text_messages_to_number', ['to_number', 'created_at'], unique=False)

    op.create_table('inbound_texts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('food_bank_id', sa.Integer(), nullable=True),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('answers_id', sa.Integer(), nullable=True),
    sa.Column('provider_sid', sa.String(length=64), nullable=False),
    sa.Column('from_number', sa.String(length=20), nullable=False),
    sa.Column('body', sa.String(length=1600), nullable=False),
    sa.Column('meaning', sa.String(length=12), nullable=False),
    sa.Column('outcome', sa.String(length=300), nullable=False),
    sa.Column('needs_attention', sa.Boolean(), nullable=False),
    sa.Column('received_at', delivery.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('handled_at', delivery.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('handled_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['answers_id'], ['text_messages.id'], name=op.f('fk_inbound_texts_answers_id_text_messages')),
    sa.ForeignKeyConstraint(['food_bank_id'], ['organizations.id'], name=op.f('fk_inbound_texts_food_bank_id_organizations')),
    sa.ForeignKeyConstraint(['handled_by_id'], ['users.id'], name=op.f('fk_inbound_texts_handled_by_id_users')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_inbound_texts_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_texts')),
    sa.UniqueConstraint('provider_sid', name=op.f('uq_inbound_texts_provider_sid'))
    )
    with op.batch_alter_table('inbound_texts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbound_texts_food_bank_id'), ['food_bank_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_inbound_texts_patient_id'), ['patient_id'], unique=False)

    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('texts_enabled', sa.Boolean(), server_default=sa.false(), nullable=False))

    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('text_consent', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('texts_stopped_at', delivery.models.base.UTCDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_column('texts_stopped_at')
        batch_op.drop_column('text_consent')

    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.drop_column('texts_enabled')

    with op.batch_alter_table('inbound_texts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_texts_patient_id'))
        batch_op.drop_index(batch_op.f('ix_inbound_texts_food_bank_id'))

    op.drop_table('inbound_texts')
    with op.batch_alter_table('text_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_text_messages_to_number')
        batch_op.drop_index(batch_op.f('ix_text_messages_patient_id'))
        batch_op.drop_index(batch_op.f('ix_text_messages_food_bank_id'))

    op.drop_table('text_messages')
