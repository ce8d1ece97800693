"""harm_totals: the aggregate summed over batches, which queries read.

Census geographies only (levels 1-5): H3 cells are as many as the incidents at res 10, so summing
their batches adds little, and upserting them cost most of a load (bench/); H3 reads harm_counts.

harm_counts keeps each batch's own counts (so a batch can be taken out again); police.uk arrives one
force-month per file, so a year span of a force is spread over twelve or more batches, and a query over
harm_counts sums them all again. harm_totals holds one row per (source, force, level, span, period,
area, key, synthetic), kept in the load's transaction (added) and by the batch delete trigger
(subtracted), so a 60-month ward query reads at most 8 rows per ward and key.

Revision ID: 0009_harm_totals
Revises: 0008_store_versions
Create Date: 2026-11-21
"""

from alembic import op

revision = "0009_harm_totals"
down_revision = "0008_store_versions"
branch_labels = None
depends_on = None

KEY = "source, force_code, level, span, period_start, area, key_id, synthetic"
# The same columns taken from harm_counts h: the batch transition table has a source column too.
KEY_H = ", ".join(f"h.{column}" for column in KEY.split(", "))


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE harm_totals (
            source        smallint NOT NULL,
            force_code    text NOT NULL,
            level         smallint NOT NULL,
            span          smallint NOT NULL,
            period_start  date NOT NULL,
            area          bigint NOT NULL,
            key_id        smallint NOT NULL,
            synthetic     boolean NOT NULL,
            incidents     integer NOT NULL CHECK (incidents > 0),
            PRIMARY KEY ({KEY})
        )
        """
    )
    op.execute(
        "COMMENT ON TABLE harm_totals IS 'harm_counts summed over batches: what harm queries read. Kept by "
        "harm_totals_add(batch) in the load transaction and by the batch delete trigger'"
    )
    op.execute(
        f"""
        CREATE FUNCTION harm_totals_add(batch integer) RETURNS bigint LANGUAGE sql AS $$
            WITH added AS (
                INSERT INTO harm_totals ({KEY}, incidents)
                SELECT {KEY}, sum(incidents) FROM harm_counts WHERE batch_id = batch AND level <= 5
                GROUP BY {KEY}
                ORDER BY {KEY}
                ON CONFLICT ({KEY}) DO UPDATE SET incidents = harm_totals.incidents + excluded.incidents
                RETURNING 1
            )
            SELECT count(*) FROM added
        $$
        """
    )
    op.execute(
        f"INSERT INTO harm_totals SELECT {KEY}, sum(incidents) FROM harm_counts WHERE level <= 5 "
        f"GROUP BY {KEY}"
    )
    # Tiles and cached harm values are keyed on this version, so a re-ingest changes their ETag.
    op.execute("INSERT INTO store_versions (name) VALUES ('harm_totals')")
    op.execute(
        "CREATE TRIGGER harm_totals_bump_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON harm_totals "
        "FOR EACH STATEMENT EXECUTE FUNCTION bump_store_version()"
    )
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION delete_batch_records() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            WITH gone_counts AS (
                SELECT {KEY_H}, sum(h.incidents) AS n
                FROM harm_counts h JOIN gone g ON h.batch_id = g.id
                WHERE h.level <= 5
                GROUP BY {KEY_H}
            ), lowered AS (
                UPDATE harm_totals t SET incidents = t.incidents - c.n
                FROM gone_counts c
                WHERE (t.source, t.force_code, t.level, t.span, t.period_start, t.area, t.key_id, t.synthetic)
                    = (c.source, c.force_code, c.level, c.span, c.period_start, c.area, c.key_id, c.synthetic)
                  AND t.incidents > c.n
                RETURNING 1
            )
            DELETE FROM harm_totals t USING gone_counts c
            WHERE (t.source, t.force_code, t.level, t.span, t.period_start, t.area, t.key_id, t.synthetic)
                = (c.source, c.force_code, c.level, c.span, c.period_start, c.area, c.key_id, c.synthetic)
              AND t.incidents <= c.n;
            DELETE FROM harm_counts h USING gone g WHERE h.batch_id = g.id;
            DELETE FROM crimes r USING gone g WHERE r.batch_id = g.id;
            DELETE FROM stop_searches r USING gone g WHERE r.batch_id = g.id;
            DELETE FROM offences r USING gone g WHERE r.batch_id = g.id;
            DELETE FROM calls r USING gone g WHERE r.batch_id = g.id;
            RETURN NULL;
        END
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER harm_totals_bump_version ON harm_totals")
    op.execute("DELETE FROM store_versions WHERE name = 'harm_totals'")
    op.execute(
        """
        CREATE OR REPLACE FUNCTION delete_batch_records() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM harm_counts h USING gone g WHERE h.batch_id = g.id;
            DELETE FROM crimes r USING gone g WHERE r.batch_id = g.id;
            DELETE FROM stop_searches r USING gone g WHERE r.batch_id = g.id;
            DELETE FROM offences r USING gone g WHERE r.batch_id = g.id;
            DELETE FROM calls r USING gone g WHERE r.batch_id = g.id;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute("DROP FUNCTION harm_totals_add(integer)")
    op.execute("DROP TABLE harm_totals")
