-- A layer file is the whole truth for its level and vintage: areas it no longer lists are removed.
DELETE FROM areas a
WHERE a.level = CAST(:level AS area_level)
  AND a.vintage = :vintage
  AND NOT EXISTS (SELECT 1 FROM staging_areas s WHERE s.code = a.code)
