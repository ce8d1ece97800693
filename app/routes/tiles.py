"""Vector tiles (``/tiles/{collection}/{z}/{x}/{y}.mvt``) and their TileJSON.

Tiles carry harm for the analysis parameters, computed from the aggregate; their ETag names the data
version, so a re-ingest or a boundary reload changes it and caches revalidate.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy import Connection

from app.deps import ConnectionDep, GrantDep, SettingsDep
from app.tilecache import TileCache
from geo import collections as geo_collections
from geo import tiles
from geo.records import POINT_MIN_ZOOM, RECORD_COLLECTIONS, RecordCollection, render_points
from geo.versions import store_version
from harm_index.disclosure import Disclosure
from harm_index.features import METRICS, VALUE_TABLES, area_values
from harm_index.periods import Period, period_or_baseline
from harm_index.weights import load_scheme
from harmmap.errors import InvalidParameterError

router = APIRouter(tags=["tiles"])
MVT = "application/vnd.mapbox-vector-tile"
CACHE_CONTROL = "public, max-age=300, stale-while-revalidate=60"

Zoom = Annotated[int, Path(ge=tiles.MIN_ZOOM, le=tiles.MAX_ZOOM, description="Zoom level")]
Column = Annotated[int, Path(ge=0, le=(1 << tiles.MAX_ZOOM) - 1, description="Tile column")]


@router.get(
    "/tiles/{collectionId}/{z}/{x}/{y}.mvt",
    summary="A vector tile of a collection, with harm",
    responses={200: {"content": {MVT: {}}, "description": "Mapbox vector tile"}},
)
def get_tile(
    collectionId: str,  # noqa: N803 - the path parameter name used across the API
    z: Zoom,
    x: Column,
    y: Column,
    request: Request,
    conn: ConnectionDep,
    settings: SettingsDep,
    grant: GrantDep,
    period: Annotated[str | None, Query(max_length=40)] = None,
    scheme: Annotated[str, Query(max_length=60, pattern=r"^[A-Za-z0-9_.-]+$")] = "ons-css",
    metric: Annotated[str, Query(description=f"one of {', '.join(METRICS)}")] = "harm_rate",
) -> Response:
    """One tile; 204 when it holds nothing.

    Record collections (points) are an analyst's own force's, from zoom 12, never in shared caches.
    """
    tiles.check_tile(z, x, y)
    chosen = period_or_baseline(settings, period)
    if collectionId in RECORD_COLLECTIONS:
        assert grant.force_code is not None  # a records grant always names the analyst's force
        body, count = render_points(
            conn, RECORD_COLLECTIONS[collectionId], force_code=grant.force_code, period=chosen, z=z, x=x, y=y
        )
        grant.returned(count)
        private = {"Cache-Control": "private, no-store", "X-Protective-Marking": "OFFICIAL-SENSITIVE"}
        return (
            Response(body, media_type=MVT, headers=private)
            if body
            else Response(status_code=204, headers=private)
        )
    coll = geo_collections.collection(collectionId)
    version = store_version(conn, *VALUE_TABLES)
    disclosure = grant.disclosure(settings.disclosure_threshold)
    # An analyst's unsuppressed figures are their own force's only: with ``force`` named, the tile's other
    # areas carry outlines and no figures. The ETag says which force and which rule the tile is under.
    force = grant.force_code
    parts = [
        version,
        coll.id,
        str(z),
        str(x),
        str(y),
        chosen.label,
        scheme,
        metric,
        str(force),
        str(disclosure.active),
    ]
    etag = '"' + hashlib.sha256("|".join(parts).encode()).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    cache: TileCache = request.app.state.tile_cache
    tile = cache.get(etag)
    if tile is None:
        tile = _render_area_tile(conn, coll, z, x, y, chosen, scheme, metric, disclosure, version, force)
        cache.put(etag, tile)
    if not tile:
        return Response(status_code=204, headers=headers)
    return Response(tile, media_type=MVT, headers=headers)


def _render_area_tile(
    conn: Connection,
    coll: geo_collections.Collection,
    z: int,
    x: int,
    y: int,
    chosen: Period,
    scheme: str,
    metric: str,
    disclosure: Disclosure,
    version: str,
    force: str | None,
) -> bytes:
    values = area_values(
        conn,
        coll,
        period=chosen,
        scheme=load_scheme(conn, scheme),
        metric=metric,
        disclosure=disclosure,
        version=version,
        force_code=force,
    )
    return tiles.render(conn, coll, z, x, y, values.metrics)


@router.get("/tiles/{collectionId}/tilejson.json", summary="TileJSON for a collection's tiles")
def tilejson(
    collectionId: str,  # noqa: N803
    request: Request,
    conn: ConnectionDep,
    settings: SettingsDep,
    grant: GrantDep,
    period: Annotated[str | None, Query(max_length=40)] = None,
    metric: Annotated[str, Query(description=f"one of {', '.join(METRICS)}")] = "harm_rate",
) -> dict[str, Any]:
    """TileJSON 3.0.0: the tile URL, zoom range, bounds and the layer's fields."""
    if period is not None:
        period_or_baseline(settings, period)  # a 422 naming it: never echoed into the URL unchecked
    if collectionId in RECORD_COLLECTIONS:
        grant.returned(0)  # its description, no records
        return _record_tilejson(request, RECORD_COLLECTIONS[collectionId], period)
    coll = geo_collections.collection(collectionId)
    if metric not in METRICS:
        raise InvalidParameterError("metric", f"{metric!r} is not a metric", allowed=list(METRICS))
    base = str(request.base_url).rstrip("/")
    query = urlencode([(k, v) for k, v in (("period", period), ("metric", metric)) if v])
    bounds = geo_collections.extent(conn, coll) or [-180.0, -85.0, 180.0, 85.0]
    return {
        "tilejson": "3.0.0",
        "name": coll.title,
        "description": coll.description,
        "attribution": "Contains OS data © Crown copyright and database right; ONS and police.uk data under "
        "the Open Government Licence v3.0",
        "tiles": [f"{base}/tiles/{coll.id}/{{z}}/{{x}}/{{y}}.mvt" + (f"?{query}" if query else "")],
        "minzoom": tiles.MIN_ZOOM,
        "maxzoom": tiles.MAX_ZOOM,
        "bounds": bounds,
        "vector_layers": [
            {
                "id": coll.id,
                "fields": {
                    "code": "String",
                    "name": "String",
                    **dict.fromkeys(tiles.TILE_ATTRIBUTES, "Number"),
                },
                "minzoom": tiles.MIN_ZOOM,
                "maxzoom": tiles.MAX_ZOOM,
            }
        ],
    }


def _record_tilejson(request: Request, coll: RecordCollection, period: str | None) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    query = f"?{urlencode({'period': period})}" if period else ""
    return {
        "tilejson": "3.0.0",
        "name": coll.title,
        "description": coll.description + " OFFICIAL-SENSITIVE: your force's records only.",
        "tiles": [f"{base}/tiles/{coll.id}/{{z}}/{{x}}/{{y}}.mvt{query}"],
        "minzoom": POINT_MIN_ZOOM,
        "maxzoom": tiles.MAX_ZOOM,
        "vector_layers": [
            {
                "id": coll.id,
                "fields": {c: "Boolean" if c == "synthetic" else "String" for c in coll.columns},
                "minzoom": POINT_MIN_ZOOM,
                "maxzoom": tiles.MAX_ZOOM,
            }
        ],
    }
