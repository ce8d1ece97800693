"""Monthly incident aggregate by area, month and category or offence code, written with each batch.

Revision ID: 0005_harm_monthly
Revises: 0004_weights
Create Date: 2026-11-21
"""

from alembic import op

revision = "0005_harm_monthly"
down_revision = "0004_weights"
branch_labels = None
depends_on = None

LEVELS = "('lsoa11', 'lsoa21', 'ward', 'local_authority', 'force', 'h3_7', 'h3_8', 'h3_9', 'h3_10')"


def upgrade() -> None:
    # Counts, not harm: harm is counts x weights at query time, so a new scheme needs no re-aggregation.
    # Append-only per batch: loading a batch inserts its counts, deleting it deletes them. police.uk
    # files are one force-month each, so batches rarely share a row and queries sum the few that do.
    op.execute(
        f"""
        CREATE TABLE harm_monthly (
            batch_id    integer NOT NULL,
            source      text NOT NULL,
            force_code  text NOT NULL,
            level       text NOT NULL CHECK (level IN {LEVELS}),
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
        "COMMENT ON TABLE harm_monthly IS 'incidents by batch x force x level (LSOA 2011/2021, ward, LAD, "
        "force, H3 7-10) x month x category (police.uk) or offence code (force data); H3 levels hold only "
        "incidents with a point; written with each batch, deleted with it'"
    )
    # Two stages: group the batches once at their finest geography (incidents sharing an H3 res-10 cell,
    # month and key collapse), then fan that much smaller set out to the nine levels.
    op.execute(
        """
        CREATE FUNCTION harm_monthly_delta(batch_ids integer[])
        RETURNS TABLE (source text, force_code text, level text, area_code text, month date, key_kind text,
                       key text, synthetic boolean, incidents bigint)
        LANGUAGE sql STABLE AS $$
            WITH finest AS MATERIALIZED (
                SELECT 'police_uk_street' AS source, c.force_code, c.month,
                       'police_uk_category' AS key_kind,
                       CASE WHEN cs.label = 'police_uk_2011_unmapped' THEN ct.label || ' (2011 category)'
                            ELSE ct.label END AS key,
                       c.synthetic, c.lsoa11_code, c.lsoa21_code, c.ward_code, c.lad_code,
                       c.h3_7, c.h3_8, c.h3_9, c.h3_10, count(*) AS n
                FROM crimes c
                JOIN labels ct ON ct.id = c.crime_type_id
                JOIN labels cs ON cs.id = c.category_scheme_id
                WHERE c.batch_id = ANY(batch_ids)
                GROUP BY 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14
                UNION ALL
                SELECT 'force_offences', o.force_code, o.month, 'ho_offence_code', o.ho_offence_code,
                       o.synthetic, o.lsoa11_code, o.lsoa21_code, o.ward_code, o.lad_code,
                       o.h3_7, o.h3_8, o.h3_9, o.h3_10, count(*)
                FROM offences o
                WHERE o.batch_id = ANY(batch_ids)
                GROUP BY 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14
            )
            SELECT f.source, f.force_code, l.level, l.code, f.month, f.key_kind, f.key, f.synthetic, sum(f.n)
            FROM finest f
            CROSS JOIN LATERAL (VALUES
                ('lsoa11', f.lsoa11_code), ('lsoa21', f.lsoa21_code), ('ward', f.ward_code),
                ('local_authority', f.lad_code), ('force', f.force_code),
                ('h3_7', to_hex(f.h3_7)), ('h3_8', to_hex(f.h3_8)), ('h3_9', to_hex(f.h3_9)),
                ('h3_10', to_hex(f.h3_10))
            ) AS l (level, code)
            WHERE l.code IS NOT NULL
            GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
        $$
        """
    )
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
    # Deleting a batch takes its incidents out of the aggregate before its records go.
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


def downgrade() -> None:
    op.execute(
        """
        CREATE OR REPLACE FUNCTION delete_batch_records() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM crimes r USING gone g WHERE r.batch_id = g.id;
            DELETE FROM stop_searches r USING gone g WHERE r.batch_id = g.id;
            DELETE FROM offences r USING gone g WHERE r.batch_id = g.id;
            DELETE FROM calls r USING gone g WHERE r.batch_id = g.id;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute("DROP FUNCTION IF EXISTS harm_monthly_add(integer)")
    op.execute("DROP FUNCTION IF EXISTS harm_monthly_delta(integer[])")
    op.execute("DROP TABLE IF EXISTS harm_monthly")
