"""Build the harmmap FastAPI application from settings."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi

from app.errors import add_exception_handlers
from app.routes import analysis, areas, exports, forces, health, maps, ogc, tiles
from harmmap import __version__, db
from harmmap.settings import Settings, get_settings

log = logging.getLogger("harmmap.http")

_REQUEST_ID_HEADER = "X-Request-ID"

# Every resource's router; one module per resource.
ROUTERS = (
    health.router,
    forces.router,
    areas.router,
    analysis.router,
    ogc.router,
    tiles.router,
    maps.router,
    exports.router,
)

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "parameter": {"type": "string"},
        "allowed": {"type": "array", "items": {"type": "string"}},
        "invalid-params": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["type", "title", "status", "detail"],
}


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; the lifespan opens the engine and disposes of it."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = db.create_db_engine(settings)
        app.state.engine = engine
        app.state.migration_head = db.migration_head(settings.db_url)
        try:
            yield
        finally:
            engine.dispose()

    app = FastAPI(
        title="harmmap",
        version=__version__,
        summary="Crime-harm maps for the Police Race Action Plan pilot forces",
        description=(
            "Ward-level crime harm, disparity and context layers for Hampshire and West Midlands. "
            "Figures based on police.uk data describe where crime happened, not where victims live. "
            "Boundaries: Source: Office for National Statistics licensed under the Open Government "
            "Licence v.3.0; Contains OS data © Crown copyright and database right."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    add_exception_handlers(app)
    app.middleware("http")(_request_id)
    for router in ROUTERS:
        app.include_router(router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


async def _request_id(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Give every request an id, echo it back, and log it with the outcome."""
    rid = uuid.uuid4().hex
    request.state.request_id = rid
    response = await call_next(request)
    response.headers[_REQUEST_ID_HEADER] = rid
    log.info("%s %s -> %s [%s]", request.method, request.url.path, response.status_code, rid)
    return response


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        app.openapi_schema = schema
    return app.openapi_schema
