"""jobs table: one job runner for all background work

Plan solves keep their PlanJob (what was asked, progress, outcome); a jobs row now carries each one
to a worker (claiming, heartbeat, retries), so plan_jobs.worker gives way to plan_jobs.job_id.
Runs left queued or running get their jobs row, and patients still waiting for a point get a
geocode job, so nothing that was waiting before the upgrade is forgotten.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 14:23:13.548462
"""

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import delivery.models

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUEUED = "state = 'queued'"


def upgrade() -> None:
    op.create_table('jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('dedupe_key', sa.String(length=200), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('run_after', delivery.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('claimed_by', sa.String(length=100), nullable=True),
    sa.Column('claimed_at', delivery.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', delivery.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=2000), nullable=True),
    sa.Column('created_at', delivery.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', delivery.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('queued', 'running', 'done', 'failed', 'cancelled')",
                       name=op.f('ck_jobs_state')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_state_run_after', ['state', 'run_after'], unique=False)
        batch_op.create_index('uq_jobs_queued_dedupe', ['kind', 'dedupe_key'], unique=True,
                              sqlite_where=sa.text(QUEUED), postgresql_where=sa.text(QUEUED))

    with op.batch_alter_table('plan_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('job_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_plan_jobs_job_id_jobs'), 'jobs', ['job_id'], ['id'])
        batch_op.drop_column('worker')

    _carry_waiting_work()


def _carry_waiting_work() -> None:
    conn = op.get_bind()
    jobs = sa.table('jobs', sa.column('id', sa.Integer), sa.column('kind', sa.String),
                    sa.column('payload', sa.JSON), sa.column('state', sa.String),
                    sa.column('dedupe_key', sa.String), sa.column('attempts', sa.Integer),
                    sa.column('max_attempts', sa.Integer),
                    sa.column('created_at', delivery.models.base.UTCDateTime(timezone=True)))
    plan_jobs = sa.table('plan_jobs', sa.column('id', sa.Integer), sa.column('status', sa.String),
                         sa.column('job_id', sa.Integer))
    patients = sa.table('patients', sa.column('geocode_status', sa.String))
    now = dt.datetime.now(dt.UTC)
    waiting = conn.execute(sa.select(plan_jobs.c.id).where(plan_jobs.c.status.in_(('queued', 'running')))
                           .order_by(plan_jobs.c.id)).scalars().all()
    for plan_job_id in waiting:
        job_id = conn.execute(jobs.insert().values(
            kind='plan_solve', payload={'plan_job_id': plan_job_id}, state='queued', attempts=0,
            max_attempts=2, created_at=now).returning(jobs.c.id)).scalar_one()
        conn.execute(plan_jobs.update().where(plan_jobs.c.id == plan_job_id).values(job_id=job_id))
    pending = conn.execute(sa.select(sa.literal(1)).select_from(patients)
                           .where(patients.c.geocode_status == 'pending').limit(1)).first()
    if pending is not None:
        conn.execute(jobs.insert().values(kind='geocode', payload={}, state='queued', dedupe_key='pending',
                                          attempts=0, max_attempts=50, created_at=now))


def downgrade() -> None:
    with op.batch_alter_table('plan_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('worker', sa.VARCHAR(length=100), nullable=True))
        batch_op.drop_constraint(batch_op.f('fk_plan_jobs_job_id_jobs'), type_='foreignkey')
        batch_op.drop_column('job_id')

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('uq_jobs_queued_dedupe', sqlite_where=sa.text(QUEUED),
                            postgresql_where=sa.text(QUEUED))
        batch_op.drop_index('ix_jobs_state_run_after')

    op.drop_table('jobs')
