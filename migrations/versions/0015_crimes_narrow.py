"""crimes stores only what cannot be worked out from the rest; crime_records works out the rest.

PostgreSQL's cost to COPY a row grows with its column count: on the two-core benchmark machine, the same
million rows took 2.95 s with crimes' 26 columns, 1.45 s with 13 and 0.62 s with 5 (server-side binary
COPY, bench/ notes). The loader needs both cores, so every column the database parses is time the load
waits. Five columns only repeated what the row already holds:

* ``h3_7``, ``h3_8``, ``h3_9``: the parents of ``h3_10``, which are bit operations on it (``h3_parent``);
* ``location_source``: a stored row was placed by its point exactly when it has one (``lon`` not null);
* ``lsoa_disagrees``: police.uk's LSOA code against the point's, compared only for rows placed by point.

crimes is rebuilt without them; crime_records gives every column it gave before, with the same values,
and harm_monthly_delta (the aggregate recounted from records) takes the parents from ``h3_10``.

Revision ID: 0015_crimes_narrow
Revises: 0014_crime_batch_months
Create Date: 2026-11-22
"""

from alembic import op

revision = "0015_crimes_narrow"
down_revision = "0014_crime_batch_months"
branch_labels = None
depends_on = None

# An H3 index keeps its resolution in bits 52-55 and a 3-bit digit per resolution below; digits finer
# than the cell's resolution are 7 (geo.h3cells.cells_to_parents does the same in numpy).
H3_PARENT = """
    CREATE FUNCTION h3_parent(cell bigint, resolution integer) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
        SELECT (cell & ~(15::bigint << 52)) | (resolution::bigint << 52)
               | ((1::bigint << (3 * (15 - resolution))) - 1)
    $$
"""

# police.uk's LSOA code against the point's, for rows placed by their point (the loader's
# lsoa_compared / lsoa_disagreements notes count the same rows); crime_records and the quality report
# both use it.
LSOA_DISAGREES = """
    CREATE FUNCTION crime_lsoa_disagrees(lon double precision, reported text, assigned text)
    RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT CASE WHEN lon IS NOT NULL AND reported IS NOT NULL THEN reported <> assigned END
    $$
"""

NARROW = """
    CREATE TABLE crimes_narrow (
        batch_id             integer NOT NULL,
        line                 integer NOT NULL,
        crime_id             text,
        month                date NOT NULL,
        reported_by_id       smallint NOT NULL,
        falls_within_id      smallint NOT NULL,
        location_text        text NOT NULL,
        lsoa11_reported      text,
        crime_type_id        smallint NOT NULL,
        category_scheme_id   smallint NOT NULL,
        outcome_id           smallint,
        context              text,
        lon                  double precision,
        lat                  double precision,
        lsoa11_code          text NOT NULL,
        lsoa21_code          text NOT NULL,
        ward_code            text NOT NULL,
        lad_code             text NOT NULL,
        force_code           text NOT NULL,
        h3_10                bigint,
        synthetic            boolean NOT NULL DEFAULT false,
        -- location_source is read off lon, so a row has both coordinates or neither.
        CONSTRAINT crimes_point_complete CHECK ((lon IS NULL) = (lat IS NULL))
    )
"""
# The table as 0003 made it, for downgrade.
WIDE = """
    CREATE TABLE crimes (
        batch_id             integer NOT NULL,
        line                 integer NOT NULL,
        crime_id             text,
        month                date NOT NULL,
        reported_by_id       smallint NOT NULL,
        falls_within_id      smallint NOT NULL,
        location_text        text NOT NULL,
        lsoa11_reported      text,
        lsoa_disagrees       boolean,
        crime_type_id        smallint NOT NULL,
        category_scheme_id   smallint NOT NULL,
        outcome_id           smallint,
        context              text,
        lon                  double precision,
        lat                  double precision,
        location_source      text NOT NULL CHECK (location_source IN ('point', 'lsoa_code')),
        lsoa11_code          text NOT NULL,
        lsoa21_code          text NOT NULL,
        ward_code            text NOT NULL,
        lad_code             text NOT NULL,
        force_code           text NOT NULL,
        h3_7                 bigint,
        h3_8                 bigint,
        h3_9                 bigint,
        h3_10                bigint,
        synthetic            boolean NOT NULL DEFAULT false
    )
"""
NARROW_COLUMNS = (
    "batch_id, line, crime_id, month, reported_by_id, falls_within_id, location_text, lsoa11_reported, "
    "crime_type_id, category_scheme_id, outcome_id, context, lon, lat, lsoa11_code, lsoa21_code, "
    "ward_code, lad_code, force_code, h3_10, synthetic"
)

VIEW = """
    CREATE VIEW crime_records AS
    SELECT c.batch_id, c.line, c.crime_id, c.month,
           rb.label AS reported_by, fw.label AS falls_within, c.location_text,
           c.lsoa11_reported,
           {lsoa_disagrees} AS lsoa_disagrees,
           ct.label AS crime_type, cs.label AS category_scheme, oc.label AS outcome, c.context,
           c.lon, c.lat,
           {location_source} AS location_source,
           c.lsoa11_code, c.lsoa21_code, c.ward_code, c.lad_code, c.force_code,
           {h3_7} AS h3_7, {h3_8} AS h3_8, {h3_9} AS h3_9, c.h3_10, c.synthetic,
           CASE WHEN c.lon IS NOT NULL THEN ST_SetSRID(ST_MakePoint(c.lon, c.lat), 4326) END AS geom
    FROM crimes c
    JOIN labels rb ON rb.id = c.reported_by_id
    JOIN labels fw ON fw.id = c.falls_within_id
    JOIN labels ct ON ct.id = c.crime_type_id
    JOIN labels cs ON cs.id = c.category_scheme_id
    LEFT JOIN labels oc ON oc.id = c.outcome_id
"""

DELTA = """
    CREATE OR REPLACE FUNCTION harm_monthly_delta(batch_ids integer[])
    RETURNS TABLE (source text, force_code text, level text, area_code text, month date, key_kind text,
                   key text, synthetic boolean, incidents bigint)
    LANGUAGE sql STABLE AS $$
        WITH finest AS MATERIALIZED (
            SELECT 'police_uk_street' AS source, c.force_code, c.month,
                   'police_uk_category' AS key_kind,
                   CASE WHEN cs.label = 'police_uk_2011_unmapped' THEN ct.label || ' (2011 category)'
                        ELSE ct.label END AS key,
                   c.synthetic, c.lsoa11_code, c.lsoa21_code, c.ward_code, c.lad_code,
                   {h3_7} AS h3_7, {h3_8} AS h3_8, {h3_9} AS h3_9, c.h3_10, count(*) AS n
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


def _worked_out(table: str, stored: bool) -> dict[str, str]:
    """The columns 0015 stops storing: as stored (the 0003 table) or as worked out from the rest."""
    if stored:
        return {name: f"{table}.{name}" for name in ("lsoa_disagrees", "location_source", *_PARENTS)}
    return {
        "lsoa_disagrees": f"crime_lsoa_disagrees({table}.lon, {table}.lsoa11_reported, {table}.lsoa11_code)",
        "location_source": f"CASE WHEN {table}.lon IS NULL THEN 'lsoa_code' ELSE 'point' END",
        **{name: f"h3_parent({table}.h3_10, {name[3:]})" for name in _PARENTS},
    }


_PARENTS = ("h3_7", "h3_8", "h3_9")


def upgrade() -> None:
    op.execute(H3_PARENT)
    op.execute(LSOA_DISAGREES)
    op.execute(NARROW)
    op.execute(f"INSERT INTO crimes_narrow ({NARROW_COLUMNS}) SELECT {NARROW_COLUMNS} FROM crimes")
    op.execute("DROP VIEW crime_records")
    op.execute("DROP TABLE crimes")
    op.execute("ALTER TABLE crimes_narrow RENAME TO crimes")
    op.execute("CREATE INDEX crimes_batch_brin ON crimes USING brin (batch_id, line)")
    op.execute("CREATE INDEX crimes_force_month_brin ON crimes USING brin (force_code, month)")
    op.execute(
        "COMMENT ON TABLE crimes IS 'police.uk street-level crime; read it through the crime_records view, "
        "which adds what is worked out from the stored columns (H3 parents, location_source, "
        "lsoa_disagrees). Rows arrive a file (one force, one month) at a time, so BRIN indexes fit'"
    )
    op.execute(VIEW.format(**_worked_out("c", stored=False)))
    op.execute(DELTA.format(**_worked_out("c", stored=False)))


def downgrade() -> None:
    op.execute("DROP VIEW crime_records")
    op.execute("ALTER TABLE crimes RENAME TO crimes_narrow")
    op.execute("DROP INDEX crimes_batch_brin")
    op.execute("DROP INDEX crimes_force_month_brin")
    op.execute(WIDE)
    worked_out = _worked_out("crimes_narrow", stored=False)
    op.execute(
        f"""
        INSERT INTO crimes
        SELECT batch_id, line, crime_id, month, reported_by_id, falls_within_id, location_text,
               lsoa11_reported,
               {worked_out["lsoa_disagrees"]},
               crime_type_id, category_scheme_id, outcome_id, context, lon, lat,
               {worked_out["location_source"]},
               lsoa11_code, lsoa21_code, ward_code, lad_code, force_code,
               {", ".join(worked_out[name] for name in _PARENTS)}, h3_10, synthetic
        FROM crimes_narrow
        """
    )
    op.execute("DROP TABLE crimes_narrow")
    op.execute("CREATE INDEX crimes_batch_brin ON crimes USING brin (batch_id, line)")
    op.execute("CREATE INDEX crimes_force_month_brin ON crimes USING brin (force_code, month)")
    op.execute(VIEW.format(**_worked_out("c", stored=True)))
    op.execute(DELTA.format(**_worked_out("c", stored=True)))
    op.execute("DROP FUNCTION h3_parent(bigint, integer)")
    op.execute("DROP FUNCTION crime_lsoa_disagrees(double precision, text, text)")
