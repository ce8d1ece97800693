"""``/forces``: police force areas with their size and ward/LSOA counts."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import ConnectionDep, PrincipalDep
from app.routes.geojson import GeoJSONResponse, geojson_responses
from app.validators import ForceCodePath
from geo import areas

router = APIRouter(prefix="/forces", tags=["areas"])


@router.get(
    "",
    response_class=GeoJSONResponse,
    responses=geojson_responses("FeatureCollection of force areas"),
    summary="All police force areas",
)
def list_forces(conn: ConnectionDep, _principal: PrincipalDep) -> GeoJSONResponse:
    """Every force area with code, name, area in km², and the wards and LSOAs held for it."""
    return GeoJSONResponse(areas.forces_geojson(conn))


@router.get(
    "/{code}",
    response_class=GeoJSONResponse,
    responses=geojson_responses("Feature of one force area"),
    summary="One police force area",
)
def get_force(code: ForceCodePath, conn: ConnectionDep, _principal: PrincipalDep) -> GeoJSONResponse:
    """One force area by its GSS code."""
    return GeoJSONResponse(areas.force_geojson(conn, code))
