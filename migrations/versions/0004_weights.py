"""Harm weight schemes: versioned, with their weights by offence code or police.uk category.

Revision ID: 0004_weights
Revises: 0003_ingest
Create Date: 2026-11-21
"""

from alembic import op

revision = "0004_weights"
down_revision = "0003_ingest"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE weight_schemes (
            id         smallint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name       text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9-]*$'),
            version    text NOT NULL,
            method     text NOT NULL,
            caveat     text NOT NULL,
            source     text NOT NULL,
            sha256     text NOT NULL,
            loaded_at  timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT weight_schemes_name_version_key UNIQUE (name, version)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE weights (
            scheme_id    smallint NOT NULL REFERENCES weight_schemes (id) ON DELETE CASCADE,
            key_kind     text NOT NULL CHECK (key_kind IN ('ho_offence_code', 'police_uk_category')),
            key          text NOT NULL,
            weight       double precision NOT NULL CHECK (weight >= 0 AND weight < 'Infinity'),
            description  text,
            derivation   jsonb,
            PRIMARY KEY (scheme_id, key_kind, key)
        )
        """
    )
    op.execute(
        "COMMENT ON COLUMN weights.derivation IS 'for derived weights: the method, the codes and "
        "volumes used, and the codes left out and why'"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS weights")
    op.execute("DROP TABLE IF EXISTS weight_schemes")
