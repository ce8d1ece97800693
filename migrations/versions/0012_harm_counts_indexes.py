"""harm_counts: the query index covers H3 rows only, and batches are found by a BRIN index.

Census geographies are read from harm_totals; only H3 cells are read from harm_counts, so census rows
need no entry in its covering query index. A batch's rows are written together, in one transaction, so
a BRIN index over batch_id finds them as well as a B-tree did, at almost no cost per row. Writing a
1M-incident batch's 2.9M rows went from 22.2 s to about 3-9 s on the benchmark database (bench/).

Revision ID: 0012_harm_counts_indexes
Revises: 0011_point_index
Create Date: 2026-11-21
"""

from alembic import op

revision = "0012_harm_counts_indexes"
down_revision = "0011_point_index"
branch_labels = None
depends_on = None

QUERY_COLUMNS = "(source, force_code, level, span, period_start) INCLUDE (area, key_id, synthetic, incidents)"


def upgrade() -> None:
    op.execute("DROP INDEX harm_counts_query_idx")
    # Level ids 7-10 are H3 resolutions (harm_levels); readers of H3 counts say level >= 7 literally.
    op.execute(f"CREATE INDEX harm_counts_h3_query_idx ON harm_counts {QUERY_COLUMNS} WHERE level >= 7")
    op.execute("DROP INDEX harm_counts_batch_idx")
    op.execute("CREATE INDEX harm_counts_batch_brin ON harm_counts USING brin (batch_id)")


def downgrade() -> None:
    op.execute("DROP INDEX harm_counts_batch_brin")
    op.execute("CREATE INDEX harm_counts_batch_idx ON harm_counts (batch_id)")
    op.execute("DROP INDEX harm_counts_h3_query_idx")
    op.execute(f"CREATE INDEX harm_counts_query_idx ON harm_counts {QUERY_COLUMNS}")
