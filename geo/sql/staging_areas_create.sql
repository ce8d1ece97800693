CREATE TEMP TABLE staging_areas (
    feature_no  integer PRIMARY KEY,
    code        text NOT NULL,
    name        text NOT NULL,
    force_code  text,
    lad_code    text,
    ward_code   text,
    wkb         bytea NOT NULL,
    repaired    boolean NOT NULL DEFAULT false,
    invalid_reason text,
    geom        geometry(MultiPolygon, 27700),
    geom_4326   geometry(MultiPolygon, 4326)
) ON COMMIT DROP
