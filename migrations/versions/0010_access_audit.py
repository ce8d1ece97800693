"""api_keys and audit_log: who may call, and what they did.

API keys are stored as an argon2 hash of their secret, never the secret itself; a key is found by its
public id (the part before the secret), so verifying one costs one hash, not a scan.

The audit log is append-only: a trigger refuses UPDATE, DELETE and TRUNCATE for every role, the
superuser included, unless the trigger itself is dropped (which needs a migration, and shows in one).

Revision ID: 0010_access_audit
Revises: 0009_harm_totals
Create Date: 2026-11-21
"""

from alembic import op

revision = "0010_access_audit"
down_revision = "0009_harm_totals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE api_keys (
            key_id       text PRIMARY KEY CHECK (key_id ~ '^[a-z0-9]{12}$'),
            secret_hash  text NOT NULL,
            role         text NOT NULL CHECK (role IN ('public', 'analyst', 'lead', 'admin')),
            force_code   text CHECK (force_code ~ '^(E23|W15)[0-9]{6}$'),
            label        text NOT NULL DEFAULT '',
            created_at   timestamptz NOT NULL DEFAULT now(),
            revoked_at   timestamptz,
            -- An analyst's records are their force's: the key must say which.
            CHECK (role <> 'analyst' OR force_code IS NOT NULL)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE audit_log (
            id           bigserial PRIMARY KEY,
            at           timestamptz NOT NULL DEFAULT clock_timestamp(),
            request_id   text NOT NULL,
            subject      text NOT NULL,
            role         text NOT NULL,
            force_code   text,
            action       text NOT NULL CHECK (action IN ('read', 'export', 'ingest', 'keys', 'denied')),
            method       text NOT NULL,
            endpoint     text NOT NULL,
            parameters   jsonb NOT NULL DEFAULT '{}'::jsonb,
            target_force text,
            status       integer NOT NULL,
            rows         bigint
        )
        """
    )
    op.execute("CREATE INDEX audit_log_at ON audit_log (at)")
    op.execute("CREATE INDEX audit_log_subject_at ON audit_log (subject, at)")
    op.execute(
        """
        CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
    )


def downgrade() -> None:
    op.execute("DROP TABLE audit_log")
    op.execute("DROP FUNCTION audit_log_append_only()")
    op.execute("DROP TABLE api_keys")
