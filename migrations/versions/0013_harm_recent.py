"""harm_recent: a new batch's counts land in a partition of their own, folded into the totals later.

Keeping the aggregate in the load's transaction cost 48 s for a batch of 1M incidents on the benchmark
database (bench/): 11 s to insert 2.9M rows into harm_counts' large B-tree, 32 s to upsert 1.3M rows
into harm_totals. Now a batch's counts are COPY'd into a fresh table, indexed in one sorted build and
attached to harm_recent as the batch's partition (3.6 s), and readers see them at once through the
views below. Folding a batch (harm_recent_fold) later does the slow part off the load path, and one
batch at a time: its census rows join harm_totals, its rows move into harm_counts, its partition goes.

A batch is in exactly one place: harm_recent (listed in harm_recent_batches) until it is folded, then
harm_counts (and harm_totals). Readers use the views:

* harm_batch_counts: every batch's counts (harm_counts + harm_recent);
* harm_census_counts: census geographies summed over folded batches, plus each recent batch's rows;
* harm_h3_counts: H3 cells of every batch.

Revision ID: 0013_harm_recent
Revises: 0012_harm_counts_indexes
Create Date: 2026-11-22
"""

from alembic import op

revision = "0013_harm_recent"
down_revision = "0012_harm_counts_indexes"
branch_labels = None
depends_on = None

KEY = "source, force_code, level, span, period_start, area, key_id, synthetic"
KEY_H = ", ".join(f"h.{column}" for column in KEY.split(", "))
COLUMNS = f"batch_id, {KEY}, incidents"
QUERY_COLUMNS = "(source, force_code, level, span, period_start) INCLUDE (area, key_id, synthetic, incidents)"

# Batches already folded are in harm_totals: their census counts are taken out again (as 0009 did).
SUBTRACT_FOLDED = f"""\
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
"""

HARM_MONTHLY = """
    CREATE VIEW harm_monthly AS
    SELECT h.batch_id, s.name AS source, h.force_code, l.name AS level, h.period_start AS month,
           CASE WHEN h.level <= 5 THEN a.code ELSE to_hex(h.area) END AS area_code,
           s.key_kind, k.key, h.synthetic, h.incidents
    FROM {table} h
    JOIN harm_levels l ON l.id = h.level
    JOIN harm_sources s ON s.id = h.source
    JOIN harm_keys k ON k.id = h.key_id
    LEFT JOIN areas a ON h.level <= 5 AND a.id = h.area
    WHERE h.span = 1
"""


def upgrade() -> None:
    op.execute(
        "CREATE TABLE harm_recent (LIKE harm_counts INCLUDING DEFAULTS INCLUDING CONSTRAINTS) "
        "PARTITION BY LIST (batch_id)"
    )
    # Built on each partition in one sorted pass before it is attached, then attached with it.
    op.execute(f"CREATE INDEX harm_recent_query_idx ON harm_recent {QUERY_COLUMNS}")
    op.execute(
        "COMMENT ON TABLE harm_recent IS 'harm_counts rows of batches not yet folded, one partition per "
        "batch (harm_recent_<batch id>). harm_recent_fold(batch) moves a batch into harm_counts and "
        "harm_totals'"
    )
    op.execute(
        "CREATE TABLE harm_recent_batches (batch_id integer PRIMARY KEY REFERENCES ingest_batches (id) "
        "ON DELETE CASCADE, loaded_at timestamptz NOT NULL DEFAULT now())"
    )
    # One version for what harm queries read, whichever of the two places a batch is in.
    op.execute("INSERT INTO store_versions (name) VALUES ('harm_aggregate')")
    op.execute(
        """
        CREATE FUNCTION bump_harm_aggregate_version() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE store_versions SET version = version + 1 WHERE name = 'harm_aggregate';
            RETURN NULL;
        END
        $$
        """
    )
    for table in ("harm_totals", "harm_recent_batches"):
        op.execute(
            f"CREATE TRIGGER {table}_bump_aggregate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION bump_harm_aggregate_version()"
        )
    op.execute(
        f"CREATE VIEW harm_batch_counts AS SELECT {COLUMNS} FROM harm_counts UNION ALL "
        f"SELECT {COLUMNS} FROM harm_recent"
    )
    op.execute(
        f"CREATE VIEW harm_census_counts AS SELECT {KEY}, incidents FROM harm_totals UNION ALL "
        f"SELECT {KEY}, incidents FROM harm_recent WHERE level <= 5"
    )
    # level >= 7 stated in both arms, so harm_counts' partial index (H3 rows only) serves the first.
    op.execute(
        f"CREATE VIEW harm_h3_counts AS SELECT {COLUMNS} FROM harm_counts WHERE level >= 7 UNION ALL "
        f"SELECT {COLUMNS} FROM harm_recent WHERE level >= 7"
    )
    op.execute("DROP VIEW harm_monthly")
    op.execute(HARM_MONTHLY.format(table="harm_batch_counts"))
    op.execute(
        f"""
        CREATE FUNCTION harm_recent_fold(batch integer) RETURNS bigint LANGUAGE plpgsql AS $$
        DECLARE
            part text := format('harm_recent_%s', batch);
            moved bigint;
        BEGIN
            -- Deleting the batch locks this row too: a delete waits for the fold, or the fold finds the
            -- batch gone. Either way its counts are taken out of the place they are in.
            PERFORM 1 FROM ingest_batches WHERE id = batch FOR UPDATE;
            IF NOT FOUND OR to_regclass(part) IS NULL THEN
                RETURN 0;
            END IF;
            INSERT INTO harm_counts ({COLUMNS})
            SELECT {COLUMNS} FROM harm_recent WHERE batch_id = batch
            ORDER BY level, span, period_start, area;
            GET DIAGNOSTICS moved = ROW_COUNT;
            -- The batch's census rows, now in harm_counts, join the totals as loads added them before 0013.
            PERFORM harm_totals_add(batch);
            DELETE FROM harm_recent_batches WHERE batch_id = batch;
            -- Last, so readers wait for the partition's lock only while this transaction commits.
            EXECUTE format('DROP TABLE %I', part);
            RETURN moved;
        END
        $$
        """
    )
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION delete_batch_records() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            part text;
        BEGIN
{SUBTRACT_FOLDED}            DELETE FROM harm_counts h USING gone g WHERE h.batch_id = g.id;
            -- Recent batches are a partition each, never in the totals.
            FOR part IN SELECT format('harm_recent_%s', g.id) FROM gone g LOOP
                IF to_regclass(part) IS NOT NULL THEN
                    EXECUTE format('DROP TABLE %I', part);
                END IF;
            END LOOP;
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
    op.execute("SELECT harm_recent_fold(batch_id) FROM harm_recent_batches ORDER BY batch_id")
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION delete_batch_records() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
{SUBTRACT_FOLDED}            DELETE FROM harm_counts h USING gone g WHERE h.batch_id = g.id;
            DELETE FROM crimes r USING gone g WHERE r.batch_id = g.id;
            DELETE FROM stop_searches r USING gone g WHERE r.batch_id = g.id;
            DELETE FROM offences r USING gone g WHERE r.batch_id = g.id;
            DELETE FROM calls r USING gone g WHERE r.batch_id = g.id;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute("DROP FUNCTION harm_recent_fold(integer)")
    op.execute("DROP VIEW harm_monthly")
    op.execute(HARM_MONTHLY.format(table="harm_counts"))
    op.execute("DROP VIEW harm_h3_counts")
    op.execute("DROP VIEW harm_census_counts")
    op.execute("DROP VIEW harm_batch_counts")
    for table in ("harm_totals", "harm_recent_batches"):
        op.execute(f"DROP TRIGGER {table}_bump_aggregate ON {table}")
    op.execute("DROP FUNCTION bump_harm_aggregate_version()")
    op.execute("DELETE FROM store_versions WHERE name = 'harm_aggregate'")
    op.execute("DROP TABLE harm_recent_batches")
    op.execute("DROP TABLE harm_recent")
