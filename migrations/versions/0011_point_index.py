"""point_index: the built point-in-polygon index of the LSOA editions, kept with the areas it indexes.

Building it means finding every H3 res-10 cell of about 5,800 LSOA polygons, twice per edition: ~6 s,
paid by every ``harmmap ingest`` process before its first row (bench/). The index depends only on the
areas and lookups, so it is stored once per version of them and read back in well under a second.

Revision ID: 0011_point_index
Revises: 0010_access_audit
Create Date: 2026-11-21
"""

from alembic import op

revision = "0011_point_index"
down_revision = "0010_access_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE point_index (
            fingerprint  text PRIMARY KEY,
            built_at     timestamptz NOT NULL DEFAULT now(),
            arrays       bytea NOT NULL
        )
        """
    )
    op.execute(
        "COMMENT ON TABLE point_index IS 'geo.assign point-in-polygon index arrays (numpy .npz), keyed by "
        "the store versions of areas and the LSOA lookups; a row for an older version is never read'"
    )


def downgrade() -> None:
    op.execute("DROP TABLE point_index")
