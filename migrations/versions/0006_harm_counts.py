"""Integer-keyed harm aggregate kept at month, quarter and year spans; harm_monthly becomes a view.

The text-keyed harm_monthly table cost a 60-month ward query ~150 ms (219k rows of text keys summed) and
its upkeep ~33 s per million incidents (bench/). harm_counts holds the same counts with integer keys, and
for the census geographies also at calendar quarter and year spans, so a period is summed from a few
stored spans per area (see harm_index.periods.Period.spans). H3 cells are kept at month span only.

Revision ID: 0006_harm_counts
Revises: 0005_harm_monthly
Create Date: 2026-11-21
"""

from alembic import op

revision = "0006_harm_counts"
down_revision = "0005_harm_monthly"
branch_labels = None
depends_on = None

# Level ids: the census geographies 1-5, H3 cells by their resolution.
LEVELS = (
    (1, "force"),
    (2, "local_authority"),
    (3, "ward"),
    (4, "lsoa21"),
    (5, "lsoa11"),
    (7, "h3_7"),
    (8, "h3_8"),
    (9, "h3_9"),
    (10, "h3_10"),
)
SOURCES = ((1, "police_uk_street", "police_uk_category"), (2, "force_offences", "ho_offence_code"))


def upgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS harm_monthly_add(integer)")
    op.execute("DROP TABLE harm_monthly")
    op.execute("CREATE TABLE harm_levels (id smallint PRIMARY KEY, name text NOT NULL UNIQUE)")
    op.execute(
        "INSERT INTO harm_levels (id, name) VALUES " + ", ".join(f"({i}, '{name}')" for i, name in LEVELS)
    )
    op.execute(
        "CREATE TABLE harm_sources (id smallint PRIMARY KEY, name text NOT NULL UNIQUE, "
        "key_kind text NOT NULL)"
    )
    op.execute(
        "INSERT INTO harm_sources (id, name, key_kind) VALUES "
        + ", ".join(f"({i}, '{name}', '{kind}')" for i, name, kind in SOURCES)
    )
    op.execute(
        """
        CREATE TABLE harm_keys (
            id      smallint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            source  smallint NOT NULL REFERENCES harm_sources (id),
            key     text NOT NULL,
            CONSTRAINT harm_keys_source_key_key UNIQUE (source, key)
        )
        """
    )
    # Counts, not harm: harm is counts x weights at query time, so a new scheme needs no re-aggregation.
    # Append-only per batch: loading a batch inserts its counts, deleting it deletes them; readers sum.
    op.execute(
        """
        CREATE TABLE harm_counts (
            batch_id      integer NOT NULL,
            source        smallint NOT NULL,
            force_code    text NOT NULL,
            level         smallint NOT NULL,
            span          smallint NOT NULL CHECK (span IN (1, 3, 12)),
            period_start  date NOT NULL,
            area          bigint NOT NULL,
            key_id        smallint NOT NULL,
            synthetic     boolean NOT NULL,
            incidents     integer NOT NULL CHECK (incidents > 0),
            CHECK (level <= 5 OR span = 1)
        )
        """
    )
    op.execute(
        "CREATE INDEX harm_counts_query_idx ON harm_counts (source, force_code, level, span, period_start) "
        "INCLUDE (area, key_id, synthetic, incidents)"
    )
    op.execute("CREATE INDEX harm_counts_batch_idx ON harm_counts (batch_id)")
    op.execute(
        "COMMENT ON TABLE harm_counts IS 'incidents by batch x force x level x span (months) x period start "
        "x area x key. area is areas.id for levels 1-5 and the H3 cell for levels 7-10; key_id is "
        "harm_keys.id; the census geographies are kept at spans 1, 3 and 12 (calendar month, quarter, "
        "year), H3 at span 1. H3 levels hold only incidents with a point'"
    )
    # The same counts as the loader writes, recomputed from a batch's stored records: used to rebuild the
    # aggregate (below, for batches loaded before this revision) and by the tests to check the loader.
    op.execute(
        """
        CREATE FUNCTION harm_counts_add(batch integer) RETURNS bigint LANGUAGE plpgsql AS $$
        DECLARE
            added bigint;
        BEGIN
            CREATE TEMP TABLE IF NOT EXISTS harm_delta ON COMMIT DROP AS
                SELECT * FROM harm_monthly_delta(ARRAY[]::integer[]);
            TRUNCATE harm_delta;
            INSERT INTO harm_delta SELECT * FROM harm_monthly_delta(ARRAY[batch]);
            INSERT INTO harm_keys (source, key)
                SELECT DISTINCT s.id, d.key FROM harm_delta d JOIN harm_sources s ON s.name = d.source
                ON CONFLICT DO NOTHING;
            INSERT INTO harm_counts (batch_id, source, force_code, level, span, period_start, area, key_id,
                                     synthetic, incidents)
            SELECT batch, s.id, d.force_code, l.id, sp.span,
                   CASE sp.span WHEN 1 THEN d.month
                                WHEN 3 THEN date_trunc('quarter', d.month)::date
                                ELSE date_trunc('year', d.month)::date END,
                   CASE WHEN l.id <= 5 THEN a.id
                        ELSE ('x' || lpad(d.area_code, 16, '0'))::bit(64)::bigint END,
                   k.id, d.synthetic, sum(d.incidents)
            FROM harm_delta d
            JOIN harm_sources s ON s.name = d.source
            JOIN harm_levels l ON l.name = d.level
            JOIN harm_keys k ON k.source = s.id AND k.key = d.key
            LEFT JOIN LATERAL (
                SELECT max(x.id) AS id FROM areas x
                WHERE l.id <= 5 AND x.level::text = d.level AND x.code = d.area_code
            ) a ON true
            CROSS JOIN (VALUES (1), (3), (12)) AS sp (span)
            WHERE (l.id <= 5 OR sp.span = 1) AND (l.id > 5 OR a.id IS NOT NULL)
            GROUP BY 2, 3, 4, 5, 6, 7, 8, 9;
            GET DIAGNOSTICS added = ROW_COUNT;
            RETURN added;
        END
        $$
        """
    )
    op.execute("SELECT harm_counts_add(id) FROM ingest_batches ORDER BY id")
    # The month span, readable: what harm_monthly was, for analysts and for checking the loader.
    op.execute(
        """
        CREATE VIEW harm_monthly AS
        SELECT h.batch_id, s.name AS source, h.force_code, l.name AS level, h.period_start AS month,
               CASE WHEN h.level <= 5 THEN a.code ELSE to_hex(h.area) END AS area_code,
               s.key_kind, k.key, h.synthetic, h.incidents
        FROM harm_counts h
        JOIN harm_levels l ON l.id = h.level
        JOIN harm_sources s ON s.id = h.source
        JOIN harm_keys k ON k.id = h.key_id
        LEFT JOIN areas a ON h.level <= 5 AND a.id = h.area
        WHERE h.span = 1
        """
    )
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


def downgrade() -> None:
    # The counts are rebuilt from the records by harm_monthly_delta, which 0005 keeps.
    op.execute("DROP VIEW harm_monthly")
    op.execute("DROP FUNCTION harm_counts_add(integer)")
    op.execute("DROP TABLE harm_counts")
    op.execute("DROP TABLE harm_keys")
    op.execute("DROP TABLE harm_sources")
    op.execute("DROP TABLE harm_levels")
    op.execute(
        """
        CREATE TABLE harm_monthly (
            batch_id    integer NOT NULL,
            source      text NOT NULL,
            force_code  text NOT NULL,
            level       text NOT NULL CHECK (level IN ('lsoa11', 'lsoa21', 'ward', 'local_authority',
                                                       'force', 'h3_7', 'h3_8', 'h3_9', 'h3_10')),
            month       date NOT NULL,
            area_code   text NOT NULL,
            key_kind    text NOT NULL CHECK (key_kind IN ('police_uk_category', 'ho_offence_code')),
            key         text NOT NULL,
            synthetic   boolean NOT NULL,
            incidents   integer NOT NULL CHECK (incidents > 0)
        )
        """
    )
    op.execute(
        "CREATE INDEX harm_monthly_query_idx ON harm_monthly (source, force_code, level, month) "
        "INCLUDE (area_code, key, synthetic, incidents)"
    )
    op.execute("CREATE INDEX harm_monthly_batch_idx ON harm_monthly (batch_id)")
    op.execute(
        """
        CREATE FUNCTION harm_monthly_add(batch integer) RETURNS void LANGUAGE sql AS $$
            INSERT INTO harm_monthly (batch_id, source, force_code, level, month, area_code, key_kind, key,
                                      synthetic, incidents)
            SELECT batch, d.source, d.force_code, d.level, d.month, d.area_code, d.key_kind, d.key,
                   d.synthetic, d.incidents
            FROM harm_monthly_delta(ARRAY[batch]) d
            ORDER BY d.source, d.force_code, d.level, d.month, d.area_code
        $$
        """
    )
    op.execute("SELECT harm_monthly_add(id) FROM ingest_batches ORDER BY id")
    op.execute(
        """
        CREATE OR REPLACE FUNCTION delete_batch_records() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM harm_monthly h USING gone g WHERE h.batch_id = g.id;
            DELETE FROM crimes r USING gone g WHERE r.batch_id = g.id;
            DELETE FROM stop_searches r USING gone g WHERE r.batch_id = g.id;
            DELETE FROM offences r USING gone g WHERE r.batch_id = g.id;
            DELETE FROM calls r USING gone g WHERE r.batch_id = g.id;
            RETURN NULL;
        END
        $$
        """
    )
