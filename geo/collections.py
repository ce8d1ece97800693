"""Feature collections for OGC API - Features: what each holds, and the store queries behind them.

A collection is a fixed entry in ``COLLECTIONS``; every identifier that reaches SQL (level, CRS, sort
column) comes from these lists, and every value is bound. Census geographies come from ``areas``; H3
collections are the cells that hold incidents, with their outlines built from the cell index.

Paging is done on codes first (cheap, no geometry), then geometry is read for the page only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import h3
import orjson
from pyproj import Transformer
from sqlalchemy import Connection, text

from harmmap.errors import InvalidParameterError, NotFoundError

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
BNG = "http://www.opengis.net/def/crs/EPSG/0/27700"
SUPPORTED_CRS = (CRS84, BNG)
# EPSG:4326 with lat/lon order is not offered: GeoJSON clients expect lon/lat.
SRID = {CRS84: 4326, BNG: 27700}
MAX_LIMIT = 10_000
DEFAULT_LIMIT = 100
# Maximum bbox, in square degrees (about 5 x Great Britain's extent): larger requests are refused.
MAX_BBOX_DEG2 = 400.0


@dataclass(frozen=True)
class Collection:
    """One published collection."""

    id: str
    title: str
    description: str
    level: str
    h3_resolution: int | None = None


COLLECTIONS = {
    c.id: c
    for c in (
        Collection("forces", "Police force areas", "Police force areas (December 2023).", "force"),
        Collection(
            "local-authorities",
            "Local authorities",
            "Local authority districts (May 2024).",
            "local_authority",
        ),
        Collection("wards", "Wards", "Electoral wards (May 2024), as ONS best-fits LSOAs to them.", "ward"),
        Collection("lsoas", "LSOAs (2021)", "Lower layer super output areas, 2021 edition.", "lsoa21"),
        *(
            Collection(
                f"h3-{r}",
                f"H3 resolution {r}",
                f"H3 cells at resolution {r} that hold at least one incident with a point.",
                f"h3_{r}",
                r,
            )
            for r in (7, 8, 9)
        ),
    )
}
# Properties every census feature carries from the store; sortable, and selectable with ``properties``.
AREA_PROPERTIES = ("code", "name", "level", "force_code", "lad_code", "ward_code", "vintage", "area_km2")
H3_PROPERTIES = ("code", "level", "resolution", "force_code")


def collection(collection_id: str) -> Collection:
    """A collection by id; NotFoundError naming the known ones otherwise."""
    found = COLLECTIONS.get(collection_id)
    if found is None:
        raise NotFoundError(
            f"no collection {collection_id!r}; collections are {', '.join(COLLECTIONS)}",
            parameter="collectionId",
        )
    return found


def parse_crs(value: str | None, parameter: str = "crs") -> str:
    """A supported CRS URI (default CRS84)."""
    if value is None or value == "":
        return CRS84
    if value not in SUPPORTED_CRS:
        raise InvalidParameterError(
            parameter, f"{value!r} is not a supported CRS", allowed=list(SUPPORTED_CRS)
        )
    return value


def parse_bbox(value: str | None, bbox_crs: str = CRS84) -> tuple[float, float, float, float] | None:
    """``minx,miny,maxx,maxy`` in ``bbox_crs``, returned in lon/lat; refuses inverted or huge boxes."""
    if value is None or value == "":
        return None
    parts = value.split(",")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise InvalidParameterError("bbox", f"{value!r} is not four numbers minx,miny,maxx,maxy") from None
    if len(numbers) != 4 or any(n != n or n in (float("inf"), float("-inf")) for n in numbers):
        raise InvalidParameterError("bbox", f"{value!r} is not four finite numbers minx,miny,maxx,maxy")
    minx, miny, maxx, maxy = numbers
    if minx >= maxx or miny >= maxy:
        raise InvalidParameterError("bbox", f"{value!r} is inverted or empty: min must be below max")
    if bbox_crs == BNG:
        to_lonlat = Transformer.from_crs(27700, 4326, always_xy=True)
        (minx, maxx), (miny, maxy) = to_lonlat.transform([minx, maxx], [miny, maxy])
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90 and -90 <= maxy <= 90):
        raise InvalidParameterError("bbox", f"{value!r} is outside longitude -180..180, latitude -90..90")
    if (maxx - minx) * (maxy - miny) > MAX_BBOX_DEG2:
        raise InvalidParameterError("bbox", f"{value!r} is larger than {MAX_BBOX_DEG2:g} square degrees")
    return minx, miny, maxx, maxy


def match(
    conn: Connection,
    coll: Collection,
    *,
    force_code: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    h3_cells: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every area of the collection matching the filters, keyed by code (store properties only).

    ``h3_cells`` (cell -> force code) lists the cells of an H3 collection; they come from the aggregate.
    """
    if coll.h3_resolution is not None:
        cells = h3_cells or {}
        out: dict[str, dict[str, Any]] = {}
        for cell, force in sorted(cells.items()):
            if force_code is not None and force != force_code:
                continue
            if bbox is not None:
                lat, lon = h3.cell_to_latlng(cell)
                if not (bbox[0] <= lon <= bbox[2] and bbox[1] <= lat <= bbox[3]):
                    continue
            out[cell] = {
                "code": cell,
                "level": coll.level,
                "resolution": coll.h3_resolution,
                "force_code": force,
            }
        return out
    rows = conn.execute(
        text(
            """
            SELECT DISTINCT ON (a.code) a.code, a.name, a.level::text AS level, a.force_code, a.lad_code,
                   a.ward_code, a.vintage, round(a.area_km2::numeric, 4)::float8 AS area_km2
            FROM areas a
            WHERE a.level = CAST(:level AS area_level)
              AND (CAST(:force AS text) IS NULL OR a.force_code = :force
                   OR (a.level = 'force' AND a.code = :force))
              AND (CAST(:minx AS float8) IS NULL
                   OR a.geom_4326 && ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4326))
            ORDER BY a.code, a.id DESC
            """
        ),
        {
            "level": coll.level,
            "force": force_code,
            "minx": bbox[0] if bbox else None,
            "miny": bbox[1] if bbox else None,
            "maxx": bbox[2] if bbox else None,
            "maxy": bbox[3] if bbox else None,
        },
    ).mappings()
    return {r["code"]: dict(r) for r in rows}


def geometries(conn: Connection, coll: Collection, codes: list[str], crs: str) -> dict[str, orjson.Fragment]:
    """GeoJSON geometries for ``codes`` in ``crs`` (6 decimals in degrees, 1 in metres), as JSON text.

    PostGIS writes the GeoJSON; it is spliced into the response as it is (``orjson.Fragment``), because
    parsing it only to serialise it again was a third of a ward collection's time (bench/).
    """
    if not codes:
        return {}
    if coll.h3_resolution is not None:
        out = {}
        project = Transformer.from_crs(4326, 27700, always_xy=True) if crs == BNG else None
        for cell in codes:
            ring = [(lon, lat) for lat, lon in h3.cell_to_boundary(cell)]
            ring.append(ring[0])
            if project is not None:
                xs, ys = project.transform([p[0] for p in ring], [p[1] for p in ring])
                coords = [[round(x, 1), round(y, 1)] for x, y in zip(xs, ys, strict=True)]
            else:
                coords = [[round(x, 6), round(y, 6)] for x, y in ring]
            out[cell] = orjson.Fragment(orjson.dumps({"type": "Polygon", "coordinates": [coords]}))
        return out
    srid = SRID[crs]
    rows = conn.execute(
        text(
            """
            SELECT DISTINCT ON (a.code) a.code,
                   CASE WHEN :srid = 27700 THEN ST_AsGeoJSON(a.geom, 1)
                        ELSE ST_AsGeoJSON(a.geom_4326, 6) END
            FROM areas a
            WHERE a.level = CAST(:level AS area_level) AND a.code = ANY(CAST(:codes AS text[]))
            ORDER BY a.code, a.id DESC
            """
        ),
        {"srid": srid, "level": coll.level, "codes": codes},
    ).all()
    return {code: orjson.Fragment(geometry) for code, geometry in rows}


def extent(conn: Connection, coll: Collection) -> list[float] | None:
    """The lon/lat bounding box of the collection's areas (the pilot forces' for H3)."""
    level = coll.level if coll.h3_resolution is None else "force"
    box = conn.execute(
        text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            "(SELECT ST_Extent(geom_4326) AS e FROM areas WHERE level = CAST(:level AS area_level)) x"
        ),
        {"level": level},
    ).one()
    return None if box[0] is None else [round(float(v), 6) for v in box]
