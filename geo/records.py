"""Record-level point collections (street crime, stop and search): OFFICIAL-SENSITIVE.

Who may read them is decided by the caller (``app``): only an analyst of the force. This module only
reads one force's records, a page at a time; table and column names come from the fixed map below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyproj import Transformer
from sqlalchemy import Connection, text

from geo.collections import BNG
from geo.tiles import BUFFER, EXTENT, check_tile, tile_bounds
from harm_index.periods import Period
from harmmap.errors import InvalidParameterError


@dataclass(frozen=True)
class RecordCollection:
    """A record table published as points."""

    id: str
    title: str
    description: str
    table: str
    key: str
    columns: tuple[str, ...]


RECORD_COLLECTIONS = {
    c.id: c
    for c in (
        RecordCollection(
            "incidents",
            "Street crime (records)",
            "police.uk street-level crime at its published snap point. OFFICIAL-SENSITIVE where force data.",
            "crime_records",
            "crime_id",
            (
                "crime_id",
                "month",
                "crime_type",
                "outcome",
                "location_text",
                "lsoa21_code",
                "ward_code",
                "synthetic",
            ),
        ),
        RecordCollection(
            "stop-searches",
            "Stop and search (records)",
            "police.uk stop-and-search records at their published location.",
            "stop_searches",
            "line",
            (
                "occurred_at",
                "search_type",
                "self_defined_group",
                "officer_defined_ethnicity",
                "legislation_group",
                "outcome",
                "lsoa21_code",
                "ward_code",
                "synthetic",
            ),
        ),
    )
}


def record_page(
    conn: Connection,
    coll: RecordCollection,
    *,
    force_code: str,
    period: Period,
    crs: str,
    limit: int,
    offset: int,
    bbox: tuple[float, float, float, float] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """One page of the force's located records in the period, as GeoJSON point features."""
    columns = ", ".join(f"r.{c}" for c in coll.columns)
    rows = (
        conn.execute(
            text(
                # table and columns come from RECORD_COLLECTIONS, a fixed list; every value is bound
                f"""
            SELECT count(*) OVER () AS matched, r.batch_id, r.line, r.lon, r.lat, {columns}
            FROM {coll.table} r
            WHERE r.force_code = :force AND r.month >= :start AND r.month < :end AND r.lon IS NOT NULL
              AND (CAST(:minx AS float8) IS NULL
                   OR (r.lon BETWEEN :minx AND :maxx AND r.lat BETWEEN :miny AND :maxy))
            ORDER BY r.batch_id, r.line
            LIMIT :limit OFFSET :offset
            """
            ),
            {
                "force": force_code,
                "start": period.start,
                "end": period.end_exclusive,
                "minx": bbox[0] if bbox else None,
                "miny": bbox[1] if bbox else None,
                "maxx": bbox[2] if bbox else None,
                "maxy": bbox[3] if bbox else None,
                "limit": limit,
                "offset": offset,
            },
        )
        .mappings()
        .all()
    )
    project = Transformer.from_crs(4326, 27700, always_xy=True) if crs == BNG else None
    features = []
    for row in rows:
        if project is not None:
            x, y = project.transform(row["lon"], row["lat"])
            point = [round(x, 1), round(y, 1)]
        else:
            point = [round(row["lon"], 6), round(row["lat"], 6)]
        features.append(
            {
                "type": "Feature",
                "id": f"{row['batch_id']}-{row['line']}",
                "geometry": {"type": "Point", "coordinates": point},
                "properties": {c: _plain(row[c]) for c in coll.columns},
            }
        )
    matched = int(rows[0]["matched"]) if rows else 0
    return features, matched


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


# Points are only drawn close in: below this zoom a tile would hold a whole force's records at once.
POINT_MIN_ZOOM = 12


def render_points(
    conn: Connection,
    coll: RecordCollection,
    *,
    force_code: str,
    period: Period,
    z: int,
    x: int,
    y: int,
) -> tuple[bytes, int]:
    """A vector tile of the force's records in the period (layer named after the collection).

    Returns the MVT bytes (empty when the tile holds nothing) and the number of records in it.
    """
    check_tile(z, x, y)
    if z < POINT_MIN_ZOOM:
        raise InvalidParameterError(
            "z", f"record points are served from zoom {POINT_MIN_ZOOM}; use an area collection below it"
        )
    west, south, east, north = tile_bounds(z, x, y)
    # table and columns come from RECORD_COLLECTIONS, a fixed list; every value is bound
    attributes = ", ".join(
        f"r.{c}" if c == "synthetic" else f"CAST(r.{c} AS text) AS {c}" for c in coll.columns
    )
    row = conn.execute(
        text(
            f"""
            WITH points AS (
                SELECT {attributes},
                       ST_AsMVTGeom(ST_Transform(ST_SetSRID(ST_MakePoint(r.lon, r.lat), 4326), 3857),
                                    ST_TileEnvelope(:z, :x, :y), :extent, :buffer, true) AS geom
                FROM {coll.table} r
                WHERE r.force_code = :force AND r.month >= :start AND r.month < :end
                  AND r.lon BETWEEN :west AND :east AND r.lat BETWEEN :south AND :north
            )
            SELECT ST_AsMVT(p, :layer, :extent, 'geom'), count(*) FROM points p WHERE p.geom IS NOT NULL
            """
        ),
        {
            "z": z,
            "x": x,
            "y": y,
            "extent": EXTENT,
            "buffer": BUFFER,
            "force": force_code,
            "start": period.start,
            "end": period.end_exclusive,
            "west": west,
            "east": east,
            "south": south,
            "north": north,
            "layer": coll.id,
        },
    ).one()
    return bytes(row[0] or b""), int(row[1])
