"""``/areas``: boundaries of one level, optionally within a force or local authority."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import ConnectionDep, PrincipalDep
from app.routes.geojson import GeoJSONResponse, geojson_responses
from app.validators import ForceCodeQuery, LadCodeQuery, LevelQuery, VintageQuery
from geo import areas

router = APIRouter(tags=["areas"])


@router.get(
    "/areas",
    response_class=GeoJSONResponse,
    responses=geojson_responses("FeatureCollection of areas"),
    summary="Areas of one level",
)
def list_areas(
    level: LevelQuery,
    conn: ConnectionDep,
    _principal: PrincipalDep,
    force: ForceCodeQuery = None,
    lad: LadCodeQuery = None,
    vintage: VintageQuery = None,
) -> GeoJSONResponse:
    """Areas of ``level`` as GeoJSON (lon/lat, 6 decimals), filtered by force, LAD or vintage."""
    body = areas.areas_geojson(conn, level, force_code=force, lad_code=lad, vintage=vintage)
    return GeoJSONResponse(body)
