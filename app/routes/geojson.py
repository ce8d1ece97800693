"""GeoJSON responses: RFC 7946 bodies already serialised by PostGIS."""

from __future__ import annotations

from typing import Any

from fastapi import Response

GEOJSON = "application/geo+json"


class GeoJSONResponse(Response):
    """A response whose body is GeoJSON text produced by the store."""

    media_type = GEOJSON


def geojson_responses(description: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for a GeoJSON route, with its problem responses."""
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    return {
        200: {"description": description, "content": {GEOJSON: {"schema": {"type": "object"}}}},
        404: {"description": "Unknown code", "content": problem},
        422: {"description": "Invalid parameter", "content": problem},
        503: {"description": "Database unavailable", "content": problem},
    }
