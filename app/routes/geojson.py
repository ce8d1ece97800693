"""GeoJSON responses: RFC 7946 bodies already serialised by PostGIS."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
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


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


def geojson_bytes(body: object) -> bytes:
    """A GeoJSON body as bytes; geometries already serialised by PostGIS go in as they are."""
    return orjson.dumps(body, default=_plain)
