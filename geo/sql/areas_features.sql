-- Areas of one level as GeoJSON Features, one row each (RFC 7946: lon/lat, 6 decimals).
-- Optional filters: :force_code, :lad_code, :vintage (NULL = no filter).
SELECT
       json_build_object(
           'type', 'Feature',
           'id', a.code,
           'geometry', ST_AsGeoJSON(a.geom_4326, 6)::json,
           'properties', json_build_object(
               'code', a.code,
               'name', a.name,
               'level', a.level,
               'vintage', a.vintage,
               'force_code', a.force_code,
               'lad_code', a.lad_code,
               'ward_code', a.ward_code,
               'area_km2', round(a.area_km2::numeric, 3),
               'geom_repaired', a.geom_repaired
           )
       )::text AS feature
FROM areas a
WHERE a.level = CAST(:level AS area_level)
  AND (CAST(:force_code AS text) IS NULL OR a.force_code = CAST(:force_code AS text))
  AND (CAST(:lad_code AS text) IS NULL OR a.lad_code = CAST(:lad_code AS text))
  AND (CAST(:vintage AS text) IS NULL OR a.vintage = CAST(:vintage AS text))
ORDER BY a.code
