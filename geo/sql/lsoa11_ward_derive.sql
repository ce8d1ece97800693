-- Each LSOA21 piece of an LSOA11 votes for the ward the best-fit lookup gives it.
WITH votes AS (
    SELECT l.lsoa11_code, w.ward_code, w.ward_vintage, w.lad_code, w.force_code,
           count(*) AS pieces
    FROM lookup_lsoa11_lsoa21 l
    JOIN lookup_lsoa21_ward w ON w.lsoa21_code = l.lsoa21_code
    GROUP BY l.lsoa11_code, w.ward_code, w.ward_vintage, w.lad_code, w.force_code
), ranked AS (
    SELECT v.*,
           sum(pieces) OVER (PARTITION BY lsoa11_code) AS all_pieces,
           count(*) OVER (PARTITION BY lsoa11_code) AS candidates,
           row_number() OVER (PARTITION BY lsoa11_code ORDER BY pieces DESC, ward_code) AS place
    FROM votes v
)
INSERT INTO staging_lookup (lsoa11_code, ward_code, ward_vintage, lad_code, force_code, best_fit,
                            candidate_wards, lsoa21_share)
SELECT lsoa11_code, ward_code, ward_vintage, lad_code, force_code, true,
       candidates, pieces::double precision / all_pieces
FROM ranked
WHERE place = 1
