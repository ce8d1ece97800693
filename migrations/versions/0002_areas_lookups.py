"""Areas (force, LAD, ward, LSOA11, LSOA21) and the lookups between them.

Revision ID: 0002_areas_lookups
Revises: 0001_postgis
Create Date: 2026-11-21
"""

from alembic import op

revision = "0002_areas_lookups"
down_revision = "0001_postgis"
branch_labels = None
depends_on = None

GSS = r"'^[EWSNK][0-9]{8}$'"


def upgrade() -> None:
    op.execute("CREATE TYPE area_level AS ENUM ('force', 'local_authority', 'ward', 'lsoa11', 'lsoa21')")
    # geom (EPSG:27700) is for measuring and overlay; geom_4326 is kept beside it so GeoJSON and
    # tile output never pay for a reprojection per request.
    op.execute(
        f"""
        CREATE TABLE areas (
            id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            level         area_level NOT NULL,
            code          text NOT NULL CHECK (code ~ {GSS}),
            vintage       text NOT NULL,
            name          text NOT NULL,
            force_code    text CHECK (force_code ~ {GSS}),
            lad_code      text CHECK (lad_code ~ {GSS}),
            ward_code     text CHECK (ward_code ~ {GSS}),
            geom          geometry(MultiPolygon, 27700) NOT NULL CHECK (ST_IsValid(geom)),
            geom_4326     geometry(MultiPolygon, 4326) NOT NULL,
            area_km2      double precision GENERATED ALWAYS AS (ST_Area(geom) / 1e6) STORED,
            geom_repaired boolean NOT NULL DEFAULT false,
            source        text NOT NULL,
            updated_at    timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT areas_level_code_vintage_key UNIQUE (level, code, vintage)
        )
        """
    )
    op.execute("CREATE INDEX areas_geom_gist ON areas USING gist (geom)")
    op.execute("CREATE INDEX areas_geom_4326_gist ON areas USING gist (geom_4326)")
    op.execute("CREATE INDEX areas_level_force_idx ON areas (level, force_code)")
    op.execute("CREATE INDEX areas_level_lad_idx ON areas (level, lad_code)")
    op.execute(
        "COMMENT ON COLUMN areas.geom_repaired IS "
        "'true when the source geometry was invalid and was repaired with ST_MakeValid'"
    )

    op.execute(
        f"""
        CREATE TABLE lookup_lsoa11_lsoa21 (
            lsoa11_code text NOT NULL CHECK (lsoa11_code ~ {GSS}),
            lsoa21_code text NOT NULL CHECK (lsoa21_code ~ {GSS}),
            change_code char(1) NOT NULL CHECK (change_code IN ('U', 'S', 'M', 'X')),
            lad_code    text NOT NULL CHECK (lad_code ~ {GSS}),
            PRIMARY KEY (lsoa11_code, lsoa21_code)
        )
        """
    )
    op.execute("CREATE INDEX lookup_lsoa11_lsoa21_lsoa21_idx ON lookup_lsoa11_lsoa21 (lsoa21_code)")
    op.execute(
        "COMMENT ON COLUMN lookup_lsoa11_lsoa21.change_code IS "
        "'ONS change: U unchanged, S split, M merged, X complex'"
    )

    op.execute(
        f"""
        CREATE TABLE lookup_lad_force (
            lad_code   text PRIMARY KEY CHECK (lad_code ~ {GSS}),
            force_code text NOT NULL CHECK (force_code ~ {GSS})
        )
        """
    )
    op.execute(
        f"""
        CREATE TABLE lookup_lsoa21_ward (
            lsoa21_code  text PRIMARY KEY CHECK (lsoa21_code ~ {GSS}),
            ward_code    text NOT NULL CHECK (ward_code ~ {GSS}),
            ward_vintage text NOT NULL,
            lad_code     text NOT NULL CHECK (lad_code ~ {GSS}),
            force_code   text NOT NULL CHECK (force_code ~ {GSS}),
            best_fit     boolean NOT NULL DEFAULT true
        )
        """
    )
    op.execute("CREATE INDEX lookup_lsoa21_ward_ward_idx ON lookup_lsoa21_ward (ward_code)")
    op.execute(
        "COMMENT ON COLUMN lookup_lsoa21_ward.best_fit IS "
        "'ONS best-fit assignment by population-weighted centroid, not an exact overlay'"
    )

    # Derived by the loader from the two lookups above: the LSOA21 pieces of an LSOA11 vote for a
    # ward, so a split LSOA11 whose pieces fall in different wards is flagged, not hidden.
    op.execute(
        f"""
        CREATE TABLE lookup_lsoa11_ward (
            lsoa11_code      text PRIMARY KEY CHECK (lsoa11_code ~ {GSS}),
            ward_code        text NOT NULL CHECK (ward_code ~ {GSS}),
            ward_vintage     text NOT NULL,
            lad_code         text NOT NULL CHECK (lad_code ~ {GSS}),
            force_code       text NOT NULL CHECK (force_code ~ {GSS}),
            best_fit         boolean NOT NULL DEFAULT true,
            candidate_wards  integer NOT NULL CHECK (candidate_wards >= 1),
            lsoa21_share     double precision NOT NULL CHECK (lsoa21_share > 0 AND lsoa21_share <= 1)
        )
        """
    )
    op.execute("CREATE INDEX lookup_lsoa11_ward_ward_idx ON lookup_lsoa11_ward (ward_code)")
    op.execute(
        "COMMENT ON COLUMN lookup_lsoa11_ward.lsoa21_share IS "
        "'share of the LSOA11''s LSOA21 pieces that lie in the chosen ward (1 = unambiguous)'"
    )


def downgrade() -> None:
    for table in (
        "lookup_lsoa11_ward",
        "lookup_lsoa21_ward",
        "lookup_lad_force",
        "lookup_lsoa11_lsoa21",
        "areas",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("DROP TYPE IF EXISTS area_level")
