"""crime_batch_months: which batches hold Crime IDs for each force and month, in place of a B-tree.

The duplicate Crime ID check reads the IDs already stored for the force and months a new file covers.
The B-tree on crimes (force_code, month) that served it cost every load about 0.8 s of database CPU a
million rows (bench/), on a two-core machine where the loader needs both cores. This small table names
the batches to read instead, and the BRIN index on crimes (batch_id, line) finds their rows: a batch's
rows are written together, so they sit in a few page ranges. The loader adds a batch's rows here in its
own transaction; deleting the batch removes them (ON DELETE CASCADE).

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
            PRIMARY KEY (force_code, month, batch_id)
        )
        """
    )
    op.execute("CREATE INDEX crime_batch_months_batch_idx ON crime_batch_months (batch_id)")
    op.execute(
        "COMMENT ON TABLE crime_batch_months IS 'Rows with a Crime ID that each batch stored, by force and "
        "month: where the duplicate check looks for earlier IDs'"
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
