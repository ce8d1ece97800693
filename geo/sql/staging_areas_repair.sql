-- Parse, repair and reproject every staged feature.
-- A valid source is kept as it is; an invalid one goes through ST_MakeValid and keeps only its polygons.
-- Reprojection can itself bend a ring across another, so the 27700 result is checked again.
WITH parsed AS (
    SELECT feature_no, ST_SetSRID(ST_GeomFromWKB(wkb), CAST(:srid AS integer)) AS g
    FROM staging_areas
), checked AS (
    SELECT feature_no, g, ST_IsValid(g) AS ok, ST_IsValidReason(g) AS reason FROM parsed
), fixed AS (
    SELECT feature_no, ok, reason,
           CASE WHEN ok THEN ST_Multi(g)
                ELSE ST_Multi(ST_CollectionExtract(ST_MakeValid(g), 3)) END AS g
    FROM checked
), projected AS (
    SELECT feature_no, ok, reason, g,
           ST_Transform(g, 27700) AS g27700
    FROM fixed
    WHERE NOT ST_IsEmpty(g)
)
UPDATE staging_areas s
SET repaired = NOT p.ok OR NOT ST_IsValid(p.g27700),
    invalid_reason = CASE WHEN p.ok THEN NULL ELSE p.reason END,
    geom = CASE WHEN ST_IsValid(p.g27700) THEN p.g27700
                ELSE ST_Multi(ST_CollectionExtract(ST_MakeValid(p.g27700), 3)) END,
    geom_4326 = ST_Multi(ST_Transform(p.g, 4326))
FROM projected p
WHERE p.feature_no = s.feature_no
