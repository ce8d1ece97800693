"""Area outlines as GeoDataFrames (British National Grid) for print maps and downloads, and label points.

Census areas come from PostGIS; H3 cells from their index. Where a code has more than one stored
vintage the latest row is used, as the collections do.
"""

from __future__ import annotations

import geopandas as gpd
import h3
import shapely
from sqlalchemy import Connection, text

from harmmap.errors import InvalidParameterError

BNG_EPSG = 27700
CENSUS_LEVELS = ("force", "local_authority", "ward", "lsoa21", "lsoa11")


def h3_resolution(level: str) -> int | None:
    """The H3 resolution of an ``h3_N`` level, None for census levels."""
    return int(level.removeprefix("h3_")) if level.startswith("h3_") else None


def area_frame(conn: Connection, level: str, codes: list[str], simplify_m: float = 0.0) -> gpd.GeoDataFrame:
    """Outlines of ``codes`` at ``level`` in EPSG:27700, one row per code (column ``code``)."""
    resolution = h3_resolution(level)
    if resolution is not None:
        polygons = [shapely.Polygon([(lon, lat) for lat, lon in h3.cell_to_boundary(c)]) for c in codes]
        return gpd.GeoDataFrame({"code": codes}, geometry=polygons, crs=4326).to_crs(BNG_EPSG)
    if level not in CENSUS_LEVELS:
        raise InvalidParameterError("level", f"{level!r} has no outlines", allowed=[*CENSUS_LEVELS, "h3_7"])
    return gpd.read_postgis(
        text(
            """
            SELECT DISTINCT ON (code) code, name,
                   CASE WHEN :tolerance > 0 THEN ST_SimplifyPreserveTopology(geom, :tolerance)
                        ELSE geom END AS geom
            FROM areas
            WHERE level = CAST(:level AS area_level) AND code = ANY(CAST(:codes AS text[]))
            ORDER BY code, id DESC
            """
        ),
        conn,
        geom_col="geom",
        params={"tolerance": simplify_m, "level": level, "codes": codes},
    )


def force_context(conn: Connection, force_code: str, simplify_m: float = 0.0) -> dict[str, gpd.GeoDataFrame]:
    """The force's outline and its local authorities' outlines, for context on a map."""
    frames = {}
    for level in ("force", "local_authority"):
        frames[level] = gpd.read_postgis(
            text(
                """
                SELECT DISTINCT ON (code) code, name,
                       CASE WHEN :tolerance > 0 THEN ST_SimplifyPreserveTopology(geom, :tolerance)
                            ELSE geom END AS geom
                FROM areas
                WHERE level = CAST(:level AS area_level)
                  AND (code = :force OR (level <> 'force' AND force_code = :force))
                ORDER BY code, id DESC
                """
            ),
            conn,
            geom_col="geom",
            params={"tolerance": simplify_m, "level": level, "force": force_code},
        )
    return frames


def label_points(conn: Connection, level: str, codes: list[str]) -> dict[str, tuple[float, float]]:
    """A lon/lat point inside each area (for keyboard navigation and labels)."""
    if h3_resolution(level) is not None:
        return {c: (round(lon, 5), round(lat, 5)) for c in codes for lat, lon in [h3.cell_to_latlng(c)]}
    rows = conn.execute(
        text(
            """
            SELECT DISTINCT ON (code) code, ST_X(p), ST_Y(p)
            FROM (SELECT code, id, ST_PointOnSurface(geom_4326) AS p FROM areas
                  WHERE level = CAST(:level AS area_level) AND code = ANY(CAST(:codes AS text[]))) x
            ORDER BY code, id DESC
            """
        ),
        {"level": level, "codes": codes},
    ).all()
    return {code: (round(x, 5), round(y, 5)) for code, x, y in rows}
