"""Mapbox vector tiles of a collection, with harm attributes, built by PostGIS (``ST_AsMVT``).

Tiles are built from the areas' outlines and from values already computed from the aggregate, never from
raw incidents. Outlines are simplified to about a quarter of a tile pixel at the requested zoom, so a
zoomed-out tile carries no detail nobody can see. H3 cells' outlines come from their index.
"""

from __future__ import annotations

import math
from typing import Any

import h3
from sqlalchemy import Connection, text

from geo.collections import Collection
from harmmap.errors import InvalidParameterError

MIN_ZOOM = 0
MAX_ZOOM = 18
EXTENT = 4096
BUFFER = 64
EARTH_M = 40_075_016.686
# Attributes written into every feature, beside code and name (numbers; None is left out by ST_AsMVT).
TILE_ATTRIBUTES = ("incidents", "harm", "harm_rate", "harm_rate_low", "harm_rate_high", "value")


def check_tile(z: int, x: int, y: int) -> None:
    """Refuse a tile address outside the zoom range or outside the grid at that zoom."""
    if not MIN_ZOOM <= z <= MAX_ZOOM:
        raise InvalidParameterError("z", f"zoom {z} is outside {MIN_ZOOM}..{MAX_ZOOM}")
    size = 1 << z
    if not 0 <= x < size:
        raise InvalidParameterError("x", f"x {x} is outside 0..{size - 1} at zoom {z}")
    if not 0 <= y < size:
        raise InvalidParameterError("y", f"y {y} is outside 0..{size - 1} at zoom {z}")


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """The tile's lon/lat bounds (west, south, east, north)."""
    n = 1 << z

    def lat(row: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return x / n * 360 - 180, lat(y + 1), (x + 1) / n * 360 - 180, lat(y)


def simplify_tolerance_m(z: int) -> float:
    """A quarter of a tile pixel, in British National Grid metres (at 52 degrees north)."""
    return EARTH_M / (1 << z) / EXTENT * math.cos(math.radians(52)) / 4


def render(
    conn: Connection,
    coll: Collection,
    z: int,
    x: int,
    y: int,
    values: dict[str, dict[str, Any]],
) -> bytes:
    """The tile's MVT bytes (one layer named after the collection); empty bytes when nothing is in it."""
    check_tile(z, x, y)
    if coll.h3_resolution is not None:
        return _h3_tile(conn, coll, z, x, y, values)
    codes = list(values)
    columns = {name: [values[c].get(name) for c in codes] for name in TILE_ATTRIBUTES}
    data = conn.execute(
        text(
            """
            WITH bounds AS (SELECT ST_TileEnvelope(:z, :x, :y) AS env),
            vals AS (
                SELECT * FROM unnest(CAST(:codes AS text[]), CAST(:incidents AS float8[]),
                                     CAST(:harm AS float8[]), CAST(:harm_rate AS float8[]),
                                     CAST(:harm_rate_low AS float8[]), CAST(:harm_rate_high AS float8[]),
                                     CAST(:value AS float8[]))
                    AS v (code, incidents, harm, harm_rate, harm_rate_low, harm_rate_high, value)
            ),
            features AS (
                SELECT DISTINCT ON (a.code) a.code, a.name, v.incidents, v.harm, v.harm_rate,
                       v.harm_rate_low, v.harm_rate_high, v.value,
                       ST_AsMVTGeom(ST_Transform(ST_SimplifyPreserveTopology(a.geom, :tolerance), 3857),
                                    b.env, :extent, :buffer, true) AS geom
                FROM areas a
                CROSS JOIN bounds b
                LEFT JOIN vals v ON v.code = a.code
                WHERE a.level = CAST(:level AS area_level)
                  AND a.geom_4326 && ST_Transform(b.env, 4326)
                ORDER BY a.code, a.id DESC
            )
            SELECT ST_AsMVT(f, :layer, :extent, 'geom') FROM features f WHERE f.geom IS NOT NULL
            """
        ),
        {
            "z": z,
            "x": x,
            "y": y,
            "codes": codes,
            **columns,
            "tolerance": simplify_tolerance_m(z),
            "extent": EXTENT,
            "buffer": BUFFER,
            "level": coll.level,
            "layer": coll.id,
        },
    ).scalar()
    return bytes(data or b"")


def _h3_tile(
    conn: Connection, coll: Collection, z: int, x: int, y: int, values: dict[str, dict[str, Any]]
) -> bytes:
    west, south, east, north = tile_bounds(z, x, y)
    margin_lon, margin_lat = (east - west) * 0.05, (north - south) * 0.05
    cells = []
    for cell in values:
        lat, lon = h3.cell_to_latlng(cell)
        if west - margin_lon <= lon <= east + margin_lon and south - margin_lat <= lat <= north + margin_lat:
            cells.append(cell)
    if not cells:
        return b""
    rings = [_cell_wkt(c) for c in cells]
    columns = {name: [values[c].get(name) for c in cells] for name in TILE_ATTRIBUTES}
    data = conn.execute(
        text(
            """
            WITH bounds AS (SELECT ST_TileEnvelope(:z, :x, :y) AS env),
            features AS (
                SELECT v.code, v.incidents, v.harm, v.value,
                       ST_AsMVTGeom(ST_Transform(ST_GeomFromText(v.wkt, 4326), 3857), b.env, :extent,
                                    :buffer, true) AS geom
                FROM unnest(CAST(:codes AS text[]), CAST(:wkt AS text[]), CAST(:incidents AS float8[]),
                            CAST(:harm AS float8[]), CAST(:value AS float8[]))
                     AS v (code, wkt, incidents, harm, value)
                CROSS JOIN bounds b
            )
            SELECT ST_AsMVT(f, :layer, :extent, 'geom') FROM features f WHERE f.geom IS NOT NULL
            """
        ),
        {
            "z": z,
            "x": x,
            "y": y,
            "codes": cells,
            "wkt": rings,
            "incidents": columns["incidents"],
            "harm": columns["harm"],
            "value": columns["value"],
            "extent": EXTENT,
            "buffer": BUFFER,
            "layer": coll.id,
        },
    ).scalar()
    return bytes(data or b"")


def _cell_wkt(cell: str) -> str:
    """The cell's outline as closed lon/lat WKT."""
    boundary = h3.cell_to_boundary(cell)
    return "POLYGON((" + ", ".join(f"{lon} {lat}" for lat, lon in [*boundary, boundary[0]]) + "))"
