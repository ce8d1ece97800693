"""Build the harmmap FastAPI application from settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from starlette.middleware.base import BaseHTTPMiddleware

from app.auth import API_KEY_HEADER, ROUTE_ACCESS, Authenticator, RateLimiter, authorize_request
from app.errors import add_exception_handlers
from app.middleware import REQUEST_ID_HEADER, Edge, audit_requests
from app.routes import admin, analysis, areas, exports, forces, health, maps, ogc, tiles
from app.tilecache import TileCache
from harmmap import __version__, db
from harmmap.settings import Settings, get_settings

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
    admin.router,
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
        # Every route is authenticated, rate-limited and authorised here, in one place.
        dependencies=[Depends(authorize_request)],
    )
    app.state.settings = settings
    app.state.authenticator = Authenticator(settings)
    app.state.rate_limiter = RateLimiter(settings.rate_limit)
    app.state.route_access = dict(ROUTE_ACCESS)
    app.state.tile_cache = TileCache(settings.tile_cache_mb * 1024 * 1024)
    add_exception_handlers(app)
    # Innermost first: the audit sees the route's outcome; Edge, outermost, sees everything.
    app.add_middleware(BaseHTTPMiddleware, dispatch=audit_requests)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "HEAD", "POST"],
            allow_headers=[API_KEY_HEADER, "Authorization", "If-None-Match"],
            expose_headers=[REQUEST_ID_HEADER, "X-Protective-Marking", "Retry-After", "ETag", "Content-Crs"],
            max_age=600,
        )
    app.add_middleware(Edge, settings=settings)
    for router in ROUTERS:
        app.include_router(router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


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
