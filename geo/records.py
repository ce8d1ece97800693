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
from harm_index.periods import Period


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
