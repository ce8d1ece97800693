-- Features that ST_MakeValid could not turn into a polygon (left without a geometry by the repair).
SELECT s.feature_no, s.code,
       ST_IsValidReason(ST_GeomFromWKB(s.wkb)) AS reason
FROM staging_areas s
WHERE s.geom IS NULL OR ST_IsEmpty(s.geom)
ORDER BY s.feature_no
