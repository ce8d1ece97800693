"""Health probes: liveness, and readiness (also at ``/health``).

``/health/live`` says the process answers. ``/health/ready`` says the store is reachable, with PostGIS,
at the code's migration head, and answers 503 with Retry-After otherwise.
"""

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


class Liveness(BaseModel):
    """The process is up and its event loop answers; says nothing about the database."""

    status: Literal["alive"]


@router.get("/health/live", response_model=Liveness, summary="Liveness: the process answers")
def live(_principal: PrincipalDep) -> JSONResponse:
    """Always 200 while the process serves requests; restart the process if this stops answering."""
    return JSONResponse({"status": "alive"}, headers={"Cache-Control": "no-store"})


@router.get(
    "/health/ready",
    response_model=Health,
    responses={503: {"model": Health, "description": "The database is down or not migrated."}},
    summary="Readiness: the service can answer queries",
)
def ready(request: Request, engine: EngineDep, _principal: PrincipalDep) -> JSONResponse:
    """200 when the store is reachable, has PostGIS and is migrated; 503 with Retry-After otherwise."""
    return health(request, engine, _principal)


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
