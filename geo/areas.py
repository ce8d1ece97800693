"""Read areas back out of the store as GeoJSON (RFC 7946: lon/lat, 6 decimal places)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, text

from geo.levels import AreaLevel
from geo.sqlfiles import load_sql
from harmmap.errors import NotFoundError


def feature_collection(features: Iterable[str]) -> str:
    """Wrap already-serialised GeoJSON Features in a FeatureCollection without re-parsing them."""
    return '{"type": "FeatureCollection", "features": [' + ", ".join(features) + "]}"


def forces_geojson(conn: Connection) -> str:
    """Every force area as a GeoJSON FeatureCollection, with area in km² and ward/LSOA counts."""
    rows = conn.execute(text(load_sql("forces_features.sql")), {"code": None}).scalars()
    return feature_collection(rows)


def force_geojson(conn: Connection, code: str) -> str:
    """One force area as a GeoJSON Feature; NotFoundError when the store has no such force."""
    feature = conn.execute(text(load_sql("forces_features.sql")), {"code": code}).scalar()
    if feature is None:
        raise NotFoundError(f"no force area has code {code}", parameter="code")
    return str(feature)


def area_exists(conn: Connection, level: AreaLevel, code: str) -> bool:
    """Whether the store holds an area of ``level`` with ``code``."""
    found = conn.execute(
        text("SELECT EXISTS (SELECT 1 FROM areas WHERE level = CAST(:level AS area_level) AND code = :code)"),
        {"level": level.value, "code": code},
    ).scalar_one()
    return bool(found)


def areas_geojson(
    conn: Connection,
    level: AreaLevel,
    *,
    force_code: str | None = None,
    lad_code: str | None = None,
    vintage: str | None = None,
) -> str:
    """Areas of one level as a GeoJSON FeatureCollection, optionally within a force or LAD.

    Raises NotFoundError naming the parameter when the force or LAD is not in the store, so an empty
    collection always means "no areas match", never "wrong code".
    """
    if force_code is not None and not area_exists(conn, AreaLevel.FORCE, force_code):
        raise NotFoundError(f"no force area has code {force_code}", parameter="force")
    if lad_code is not None and not area_exists(conn, AreaLevel.LOCAL_AUTHORITY, lad_code):
        raise NotFoundError(f"no local authority has code {lad_code}", parameter="lad")
    params = {
        "level": level.value,
        "force_code": force_code,
        "lad_code": lad_code,
        "vintage": vintage,
    }
    rows = conn.execute(text(load_sql("areas_features.sql")), params).scalars()
    return feature_collection(rows)


def force_names(conn: Connection) -> dict[str, str]:
    """Every stored force area's name by code."""
    rows = conn.execute(
        text("SELECT DISTINCT ON (code) code, name FROM areas WHERE level = 'force' ORDER BY code, id DESC")
    )
    return {str(code): str(name) for code, name in rows}
