-- Force areas as GeoJSON Features, one row each (RFC 7946: lon/lat, 6 decimals), with their size and the
-- number of wards and LSOAs the store holds for each. :code NULL means every force.
SELECT
       json_build_object(
           'type', 'Feature',
           'id', f.code,
           'geometry', ST_AsGeoJSON(f.geom_4326, 6)::json,
           'properties', json_build_object(
               'code', f.code,
               'name', f.name,
               'vintage', f.vintage,
               'area_km2', round(f.area_km2::numeric, 3),
               'ward_count', (SELECT count(*) FROM areas a
                              WHERE a.level = 'ward' AND a.force_code = f.code),
               'lsoa11_count', (SELECT count(*) FROM areas a
                                WHERE a.level = 'lsoa11' AND a.force_code = f.code),
               'lsoa21_count', (SELECT count(*) FROM areas a
                                WHERE a.level = 'lsoa21' AND a.force_code = f.code)
           )
       )::text AS feature
FROM areas f
WHERE f.level = 'force'
  AND (CAST(:code AS text) IS NULL OR f.code = CAST(:code AS text))
ORDER BY f.code
