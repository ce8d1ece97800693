"""Ingest: batches, rejects, police.uk crime and stop-and-search, force offences, calls, IMD, Census.

Revision ID: 0003_ingest
Revises: 0002_areas_lookups
Create Date: 2026-11-21
"""

from alembic import op

revision = "0003_ingest"
down_revision = "0002_areas_lookups"
branch_labels = None
depends_on = None

# Where a located record is, as assigned at load. The point (lon, lat) is WGS84; location_source says
# whether the areas came from the point or, with no coordinates, from the record's own LSOA code.
LOCATED = """
    lon              double precision,
    lat              double precision,
    location_source  text NOT NULL CHECK (location_source IN ('point', 'lsoa_code')),
    lsoa11_code      text NOT NULL,
    lsoa21_code      text NOT NULL,
    ward_code        text NOT NULL,
    lad_code         text NOT NULL,
    force_code       text NOT NULL,
    h3_7             bigint,
    h3_8             bigint,
    h3_9             bigint,
    h3_10            bigint,
    synthetic        boolean NOT NULL DEFAULT false
"""

RECORD_TABLES = ("crimes", "stop_searches", "offences", "calls")


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE ingest_batches (
            id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            source        text NOT NULL,
            file_name     text NOT NULL,
            sha256        text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
            bytes         bigint NOT NULL,
            force_code    text,
            synthetic     boolean NOT NULL DEFAULT false,
            data_rows     integer NOT NULL,
            blank_lines   integer NOT NULL,
            accepted      integer NOT NULL,
            rejected      integer NOT NULL,
            started_at    timestamptz NOT NULL,
            finished_at   timestamptz NOT NULL,
            seconds       double precision NOT NULL,
            notes         jsonb NOT NULL DEFAULT '{}'::jsonb,
            CONSTRAINT ingest_batches_counts_add_up CHECK (accepted + rejected = data_rows),
            CONSTRAINT ingest_batches_source_sha256_key UNIQUE (source, sha256)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE ingest_rejects (
            batch_id  integer NOT NULL REFERENCES ingest_batches (id) ON DELETE CASCADE,
            line      integer NOT NULL,
            field     text NOT NULL,
            kind      text NOT NULL,
            reason    text NOT NULL,
            raw       text NOT NULL,
            PRIMARY KEY (batch_id, line)
        )
        """
    )
    # Long, repeated strings are stored once in labels and referenced by smallint ids: police.uk crime
    # is the high-volume table, and a narrow row is what lets COPY keep up (see bench/).
    op.execute(
        """
        CREATE TABLE labels (
            id     smallint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            kind   text NOT NULL,
            label  text NOT NULL,
            CONSTRAINT labels_kind_label_key UNIQUE (kind, label)
        )
        """
    )
    op.execute(
        f"""
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
            {LOCATED}
        )
        """
    )
    op.execute(
        "COMMENT ON TABLE crimes IS 'police.uk street-level crime; read it through the crime_records view. "
        "Rows arrive a file (one force, one month) at a time, so BRIN indexes fit'"
    )
    op.execute(
        """
        CREATE VIEW crime_records AS
        SELECT c.batch_id, c.line, c.crime_id, c.month,
               rb.label AS reported_by, fw.label AS falls_within, c.location_text,
               c.lsoa11_reported, c.lsoa_disagrees,
               ct.label AS crime_type, cs.label AS category_scheme, oc.label AS outcome, c.context,
               c.lon, c.lat, c.location_source, c.lsoa11_code, c.lsoa21_code, c.ward_code, c.lad_code,
               c.force_code, c.h3_7, c.h3_8, c.h3_9, c.h3_10, c.synthetic,
               CASE WHEN c.lon IS NOT NULL THEN ST_SetSRID(ST_MakePoint(c.lon, c.lat), 4326) END AS geom
        FROM crimes c
        JOIN labels rb ON rb.id = c.reported_by_id
        JOIN labels fw ON fw.id = c.falls_within_id
        JOIN labels ct ON ct.id = c.crime_type_id
        JOIN labels cs ON cs.id = c.category_scheme_id
        LEFT JOIN labels oc ON oc.id = c.outcome_id
        """
    )

    op.execute(
        f"""
        CREATE TABLE stop_searches (
            batch_id                  integer NOT NULL,
            line                      integer NOT NULL,
            search_type               text NOT NULL,
            occurred_at               timestamptz NOT NULL,
            month                     date NOT NULL,
            part_of_operation         boolean,
            operation_name            text,
            gender                    text,
            age_range                 text,
            self_defined_ethnicity    text,
            self_defined_group        text NOT NULL,
            officer_defined_ethnicity text,
            legislation               text,
            legislation_group         text NOT NULL,
            object_of_search          text,
            outcome                   text,
            outcome_linked            boolean,
            removal_more_than_outer   boolean,
            {LOCATED}
        )
        """
    )

    op.execute(
        f"""
        CREATE TABLE offences (
            batch_id          integer NOT NULL,
            line              integer NOT NULL,
            incident_id       text NOT NULL,
            recorded_date     date NOT NULL,
            month             date NOT NULL,
            ho_offence_code   text NOT NULL,
            victim_ethnicity  text,
            victim_group      text,
            {LOCATED}
        )
        """
    )
    op.execute("CREATE UNIQUE INDEX offences_force_incident_key ON offences (force_code, incident_id)")

    op.execute(
        f"""
        CREATE TABLE calls (
            batch_id          integer NOT NULL,
            line              integer NOT NULL,
            call_id           text NOT NULL,
            received_at       timestamptz NOT NULL,
            month             date NOT NULL,
            channel           text NOT NULL CHECK (channel IN ('999', '101', 'online')),
            opening_code      text NOT NULL,
            closing_code      text NOT NULL,
            caller_ref        text,
            caller_ethnicity  text,
            caller_group      text,
            {LOCATED}
        )
        """
    )
    op.execute("CREATE UNIQUE INDEX calls_force_call_key ON calls (force_code, call_id)")
    op.execute("CREATE INDEX calls_caller_idx ON calls (caller_ref, received_at)")

    for table in RECORD_TABLES:
        op.execute(f"CREATE INDEX {table}_batch_brin ON {table} USING brin (batch_id, line)")
        op.execute(f"CREATE INDEX {table}_force_month_brin ON {table} USING brin (force_code, month)")
    # A per-row foreign key would cost a trigger call per COPY'd row; one statement-level trigger
    # gives the same cascade when a batch is deleted.
    op.execute(
        f"""
        CREATE FUNCTION delete_batch_records() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            {" ".join(f"DELETE FROM {t} r USING gone g WHERE r.batch_id = g.id;" for t in RECORD_TABLES)}
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER ingest_batches_cascade AFTER DELETE ON ingest_batches "
        "REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION delete_batch_records()"
    )

    op.execute(
        """
        CREATE TABLE imd2019_lsoa11 (
            lsoa11_code  text NOT NULL,
            measure      text NOT NULL,
            rank         integer NOT NULL CHECK (rank BETWEEN 1 AND 32844),
            decile       smallint NOT NULL CHECK (decile BETWEEN 1 AND 10),
            batch_id     integer NOT NULL REFERENCES ingest_batches (id) ON DELETE CASCADE,
            PRIMARY KEY (lsoa11_code, measure)
        )
        """
    )
    op.execute(
        "COMMENT ON TABLE imd2019_lsoa11 IS 'English IoD 2019 ranks (1 = most deprived of 32,844) and "
        "deciles by LSOA 2011, one row per domain or sub-domain (measure)'"
    )
    op.execute(
        """
        CREATE TABLE census2021_ethnicity (
            area_code    text NOT NULL,
            area_level   text NOT NULL CHECK (area_level IN ('lsoa21', 'local_authority')),
            category     text NOT NULL,
            broad_group  text NOT NULL,
            residents    integer NOT NULL CHECK (residents >= 0),
            batch_id     integer NOT NULL REFERENCES ingest_batches (id) ON DELETE CASCADE,
            PRIMARY KEY (area_level, area_code, category)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS crime_records")
    op.execute("DROP TRIGGER IF EXISTS ingest_batches_cascade ON ingest_batches")
    op.execute("DROP FUNCTION IF EXISTS delete_batch_records()")
    for table in (
        "census2021_ethnicity",
        "imd2019_lsoa11",
        *RECORD_TABLES,
        "labels",
        "ingest_rejects",
        "ingest_batches",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
