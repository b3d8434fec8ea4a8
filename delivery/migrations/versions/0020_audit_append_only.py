"""the audit trail is append-only: triggers refuse UPDATE and DELETE on audit_events on both
databases (R10.3), so neither a bug nor the app's own connection can rewrite who saw what

Revision ID: 0020
Revises: 0013
Create Date: 2026-12-01 17:30:00

On PostgreSQL the trigger holds for every role, the owner included. Where the app connects as a
role that does not own the table (the recommended production set-up), the owner also runs
`delivery.platform.audit.app_role_grants(role)` once (REVOKE UPDATE, DELETE, TRUNCATE; GRANT
SELECT, INSERT). Not done here: the migration cannot know the app role's name, and revoking from
the owner itself has no effect.
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0020'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MESSAGE = "audit_events is append-only"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege';
            END $$""")
        op.execute("""
            CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
            FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()""")
        return
    for event in ("UPDATE", "DELETE"):
        op.execute(f"""
            CREATE TRIGGER audit_events_no_{event.lower()} BEFORE {event} ON audit_events
            BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION audit_events_append_only()")
        return
    for event in ("update", "delete"):
        op.execute(f"DROP TRIGGER audit_events_no_{event}")
