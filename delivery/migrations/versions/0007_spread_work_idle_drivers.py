"""Spread work across volunteers (a program setting), and why a driver got no route

Revision ID: 0007
Revises: 0015
Create Date: 2026-12-01 14:30:16.584747
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('spread_work', sa.String(length=10), server_default='some', nullable=False))

    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idle_drivers', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.drop_column('idle_drivers')

    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.drop_column('spread_work')
