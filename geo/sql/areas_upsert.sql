-- Insert new areas and update changed ones. An unchanged row is not rewritten at all, so a second load
-- of the same files changes nothing (not even xmin or updated_at).
WITH upserted AS (
    INSERT INTO areas AS a (level, code, vintage, name, force_code, lad_code, ward_code,
                            geom, geom_4326, geom_repaired, source)
    SELECT CAST(:level AS area_level), s.code, :vintage, s.name, s.force_code, s.lad_code, s.ward_code,
           s.geom, s.geom_4326, s.repaired, :source
    FROM staging_areas s
    ON CONFLICT (level, code, vintage) DO UPDATE
    SET name = EXCLUDED.name,
        force_code = EXCLUDED.force_code,
        lad_code = EXCLUDED.lad_code,
        ward_code = EXCLUDED.ward_code,
        geom = EXCLUDED.geom,
        geom_4326 = EXCLUDED.geom_4326,
        geom_repaired = EXCLUDED.geom_repaired,
        source = EXCLUDED.source,
        updated_at = now()
    WHERE (a.name, a.force_code, a.lad_code, a.ward_code, a.geom_repaired, a.source,
           ST_AsEWKB(a.geom), ST_AsEWKB(a.geom_4326))
          IS DISTINCT FROM
          (EXCLUDED.name, EXCLUDED.force_code, EXCLUDED.lad_code, EXCLUDED.ward_code,
           EXCLUDED.geom_repaired, EXCLUDED.source, ST_AsEWKB(EXCLUDED.geom), ST_AsEWKB(EXCLUDED.geom_4326))
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted) AS inserted,
       count(*) FILTER (WHERE NOT inserted) AS updated
FROM upserted
