"""``GET /health``: is the store reachable, with PostGIS, at the code's migration head."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError

from app.deps import EngineDep, PrincipalDep
from harmmap import db

router = APIRouter(tags=["service"])


class DatabaseHealth(BaseModel):
    """The store's state as the service sees it."""

    reachable: bool
    postgis_version: str | None
    migration_revision: str | None
    migration_head: str | None
    up_to_date: bool


class Health(BaseModel):
    """``ok`` when the service can answer queries; ``unavailable`` (HTTP 503) otherwise."""

    status: Literal["ok", "unavailable"]
    database: DatabaseHealth


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "The database is down or not migrated."}},
    summary="Service and database health",
)
def health(request: Request, engine: EngineDep, _principal: PrincipalDep) -> JSONResponse:
    """Database reachability, PostGIS version and migration state; 503 when not usable."""
    head: str | None = request.app.state.migration_head
    revision = postgis = None
    reachable = False
    try:
        with engine.connect() as conn:
            revision = db.current_revision(conn)
            postgis = db.postgis_version(conn)
            reachable = True
    except DBAPIError:
        pass
    up_to_date = reachable and revision == head
    status: Literal["ok", "unavailable"] = "ok" if up_to_date and postgis else "unavailable"
    body = Health(
        status=status,
        database=DatabaseHealth(
            reachable=reachable,
            postgis_version=postgis,
            migration_revision=revision,
            migration_head=head,
            up_to_date=up_to_date,
        ),
    )
    headers = (
        {"Retry-After": "5", "Cache-Control": "no-store"} if status != "ok" else {"Cache-Control": "no-store"}
    )
    return JSONResponse(body.model_dump(), status_code=200 if status == "ok" else 503, headers=headers)
