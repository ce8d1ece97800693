"""crime_batch_months: each batch's Crime ID keys by force and month, in place of a B-tree on crimes.

The duplicate Crime ID check compares a new file's IDs with those already stored for its force and
months. It read them from crimes through a B-tree on (force_code, month), which cost every load about
0.8 s of database CPU a million rows (bench/) on a two-core machine where the loader needs both cores,
and then computed a 64-bit key for every stored row again (2.5 s for a million). Now each load keeps,
per force and month, the sorted 64-bit keys of the IDs it stored (little-endian int64s), and a later
load reads those. The full IDs, to confirm a key match, are read from crimes by batch (the BRIN index
on batch_id, line finds a batch's rows: they are written together). The loader writes its rows here in
its own transaction; deleting the batch removes them (ON DELETE CASCADE).

Batches already stored get their counts but no keys (NULL); the loader reads those from crimes.

Revision ID: 0014_crime_batch_months
Revises: 0013_harm_recent
Create Date: 2026-11-22
"""

from alembic import op

revision = "0014_crime_batch_months"
down_revision = "0013_harm_recent"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE crime_batch_months (
            force_code  text NOT NULL,
            month       date NOT NULL,
            batch_id    integer NOT NULL REFERENCES ingest_batches (id) ON DELETE CASCADE,
            crime_ids   integer NOT NULL CHECK (crime_ids > 0),
            keys        bytea CHECK (length(keys) = 8 * crime_ids),
            PRIMARY KEY (force_code, month, batch_id)
        )
        """
    )
    op.execute("CREATE INDEX crime_batch_months_batch_idx ON crime_batch_months (batch_id)")
    op.execute(
        "COMMENT ON TABLE crime_batch_months IS 'Rows with a Crime ID that each batch stored, by force and "
        "month, with their sorted 64-bit keys (ingest.police_uk.crime_keys): what the duplicate check "
        "compares new IDs with'"
    )
    op.execute(
        """
        INSERT INTO crime_batch_months (force_code, month, batch_id, crime_ids)
        SELECT force_code, month, batch_id, count(*) FROM crimes
        WHERE crime_id IS NOT NULL GROUP BY force_code, month, batch_id
        """
    )
    op.execute("DROP INDEX crimes_force_month_idx")


def downgrade() -> None:
    op.execute("CREATE INDEX crimes_force_month_idx ON crimes (force_code, month) WHERE crime_id IS NOT NULL")
    op.execute("DROP TABLE crime_batch_months")
