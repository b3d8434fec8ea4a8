"""report costs: what a delivered box costs and the volunteer mileage rate, per program

The funder report's cost per delivered box is the box's cost plus the miles volunteers drove at
this rate, per box. Existing programs get the defaults ($25.00 a box, $0.70 a mile).

Revision ID: 0015
Revises: 0006
Create Date: 2026-12-01 15:06:46.765135
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('box_cost_cents', sa.Integer(), server_default='2500', nullable=False))
        batch_op.add_column(sa.Column('mileage_rate_cents', sa.Integer(), server_default='70', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.drop_column('mileage_rate_cents')
        batch_op.drop_column('box_cost_cents')
