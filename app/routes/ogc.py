"""OGC API - Features Part 1 (core, GeoJSON, OpenAPI 3.0) and Part 2 (CRS by reference).

The landing page, conformance, collections and items. Items carry harm for the request's analysis
parameters; everything about what an item holds lives in ``geo.collections`` and
``harm_index.features``: this module only reads parameters and writes responses.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response

from app.deps import ConnectionDep, GrantDep, PrincipalDep, SettingsDep
from app.routes.geojson import GEOJSON, geojson_bytes, geojson_responses
from app.validators import ForceCodeQuery
from geo import collections as geo_collections
from geo.records import RECORD_COLLECTIONS, RecordCollection, record_page
from harm_index.features import METRICS, FeaturePage, feature_page
from harm_index.periods import period_or_baseline
from harm_index.weights import load_scheme
from harmmap.access import Grant, Role
from harmmap.errors import InvalidParameterError, NotFoundError
from harmmap.settings import Settings

router = APIRouter(tags=["OGC API - Features"])

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
]
CSV = "text/csv"


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.get("/", summary="Landing page")
def landing(request: Request, _principal: PrincipalDep) -> dict[str, Any]:
    """What this service is and where its parts are."""
    base = _base(request)
    return {
        "title": "harmmap",
        "description": "Crime harm (ONS Crime Severity Score) by area for the Police Race Action Plan pilot "
        "forces. Figures describe where crimes happened, not where victims live.",
        "links": [
            {"href": f"{base}/", "rel": "self", "type": "application/json", "title": "this document"},
            {
                "href": f"{base}/openapi.json",
                "rel": "service-desc",
                "type": "application/vnd.oai.openapi+json;version=3.0",
                "title": "the API definition",
            },
            {
                "href": f"{base}/docs",
                "rel": "service-doc",
                "type": "text/html",
                "title": "the API documentation",
            },
            {
                "href": f"{base}/conformance",
                "rel": "conformance",
                "type": "application/json",
                "title": "OGC API conformance classes",
            },
            {
                "href": f"{base}/collections",
                "rel": "data",
                "type": "application/json",
                "title": "the feature collections",
            },
            {
                "href": f"{base}/map",
                "rel": "alternate",
                "type": "text/html",
                "title": "the interactive web map",
            },
        ],
    }


@router.get("/conformance", summary="Conformance classes")
def conformance(_principal: PrincipalDep) -> dict[str, Any]:
    """The OGC API conformance classes implemented."""
    return {"conformsTo": CONFORMANCE}


def _collection_doc(request: Request, conn: Any, coll: geo_collections.Collection) -> dict[str, Any]:
    base = _base(request)
    bbox = geo_collections.extent(conn, coll)
    settings: Settings = request.app.state.settings
    return {
        "id": coll.id,
        "title": coll.title,
        "description": coll.description,
        "itemType": "feature",
        "crs": list(geo_collections.SUPPORTED_CRS),
        "storageCrs": geo_collections.BNG if coll.h3_resolution is None else geo_collections.CRS84,
        "extent": {
            "spatial": {"bbox": [bbox] if bbox else [], "crs": geo_collections.CRS84},
            "temporal": {
                "interval": [[f"{settings.baseline_start}-01T00:00:00Z", None]],
                "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
            },
        },
        "links": [
            {"href": f"{base}/collections/{coll.id}", "rel": "self", "type": "application/json"},
            {"href": f"{base}/collections/{coll.id}/items", "rel": "items", "type": GEOJSON},
            {"href": f"{base}/collections/{coll.id}/items?f=csv", "rel": "items", "type": CSV},
        ],
    }


def _record_doc(request: Request, coll: RecordCollection) -> dict[str, Any]:
    base = _base(request)
    return {
        "id": coll.id,
        "title": coll.title,
        "description": coll.description + " OFFICIAL-SENSITIVE: your force's records only.",
        "itemType": "feature",
        "crs": list(geo_collections.SUPPORTED_CRS),
        "links": [
            {"href": f"{base}/collections/{coll.id}", "rel": "self", "type": "application/json"},
            {"href": f"{base}/collections/{coll.id}/items", "rel": "items", "type": GEOJSON},
        ],
    }


@router.get("/collections", summary="Feature collections")
def list_collections(request: Request, conn: ConnectionDep, principal: PrincipalDep) -> dict[str, Any]:
    """Every collection the caller may read (record-level ones only for an analyst of a force)."""
    base = _base(request)
    docs = [_collection_doc(request, conn, c) for c in geo_collections.COLLECTIONS.values()]
    if principal.role == Role.ANALYST and principal.force_code is not None:
        docs += [_record_doc(request, c) for c in RECORD_COLLECTIONS.values()]
    return {
        "links": [{"href": f"{base}/collections", "rel": "self", "type": "application/json"}],
        "collections": docs,
    }


@router.get("/collections/{collectionId}", summary="One feature collection")
def get_collection(
    collectionId: str,  # noqa: N803 - the OGC API path parameter name
    request: Request,
    conn: ConnectionDep,
    grant: GrantDep,
) -> dict[str, Any]:
    """A collection's description and links (a record collection's only for an analyst of a force)."""
    if collectionId in RECORD_COLLECTIONS:
        grant.returned(0)  # its description, no records
        return _record_doc(request, RECORD_COLLECTIONS[collectionId])
    return _collection_doc(request, conn, geo_collections.collection(collectionId))


Limit = Annotated[
    int,
    Query(
        ge=1, le=geo_collections.MAX_LIMIT, description=f"Features per page (1..{geo_collections.MAX_LIMIT})."
    ),
]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="Features to skip.")]
Text = Annotated[str | None, Query(max_length=400)]


def _analysis(
    conn: Any,
    settings: Settings,
    period: str | None,
    baseline: str | None,
    scheme: str,
) -> tuple[Any, Any, Any]:
    chosen = period_or_baseline(settings, period)
    compare = period_or_baseline(settings, baseline, "baseline") if baseline else None
    return chosen, compare, load_scheme(conn, scheme)


def _items(
    request: Request,
    conn: Any,
    settings: Settings,
    grant: Grant,
    collection_id: str,
    *,
    feature_id: str | None,
    bbox: str | None,
    bbox_crs: str | None,
    limit: int,
    offset: int,
    properties: str | None,
    sortby: str | None,
    crs: str | None,
    force: str | None,
    period: str | None,
    baseline: str | None,
    scheme: str,
    categories: str | None,
    metric: str,
) -> tuple[FeaturePage, str]:
    coll = geo_collections.collection(collection_id)
    out_crs = geo_collections.parse_crs(crs)
    box = geo_collections.parse_bbox(bbox, geo_collections.parse_crs(bbox_crs, "bbox-crs"))
    chosen, compare, weights = _analysis(conn, settings, period, baseline, scheme)
    page = feature_page(
        conn,
        coll,
        period=chosen,
        scheme=weights,
        crs=out_crs,
        limit=limit,
        offset=offset,
        force_code=force,
        bbox=box,
        baseline=compare,
        categories=_split(categories),
        metric=metric,
        sortby=_split(sortby),
        properties=_split(properties),
        disclosure=grant.disclosure(settings.disclosure_threshold),
        feature_id=feature_id,
    )
    grant.returned(len(page.features))
    return page, out_crs


def _split(value: str | None) -> list[str] | None:
    if value is None or value.strip() == "":
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _crs_header(crs: str) -> dict[str, str]:
    return {"Content-Crs": f"<{crs}>"}


@router.get(
    "/collections/{collectionId}/items",
    summary="Features of a collection, with harm",
    responses=geojson_responses("GeoJSON FeatureCollection (or CSV with f=csv)"),
)
def get_items(
    collectionId: str,  # noqa: N803 - the OGC API path parameter name
    request: Request,
    conn: ConnectionDep,
    settings: SettingsDep,
    grant: GrantDep,
    bbox: Annotated[str | None, Query(max_length=200, description="minx,miny,maxx,maxy")] = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs", max_length=100)] = None,
    limit: Limit = geo_collections.DEFAULT_LIMIT,
    offset: Offset = 0,
    properties: Text = None,
    sortby: Text = None,
    crs: Annotated[str | None, Query(max_length=100)] = None,
    f: Annotated[str, Query(pattern="^(json|geojson|csv)$", description="json (GeoJSON) or csv")] = "json",
    force: ForceCodeQuery = None,
    period: Annotated[
        str | None, Query(max_length=40, description="e.g. 2019-04..2020-03, FY2019/20")
    ] = None,
    baseline: Annotated[str | None, Query(max_length=40, description="compare with, e.g. baseline")] = None,
    scheme: Annotated[str, Query(max_length=60, pattern=r"^[A-Za-z0-9_.-]+$")] = "ons-css",
    categories: Text = None,
    metric: Annotated[str, Query(description=f"one of {', '.join(METRICS)}")] = "harm_rate",
) -> Response:
    """A page of features with harm for the analysis parameters (default: the baseline, ONS CSS)."""
    if collectionId in RECORD_COLLECTIONS:
        return _record_items(
            request,
            conn,
            settings,
            grant,
            RECORD_COLLECTIONS[collectionId],
            force=force,
            bbox=bbox,
            bbox_crs=bbox_crs,
            crs=crs,
            period=period,
            limit=limit,
            offset=offset,
        )
    page, out_crs = _items(
        request,
        conn,
        settings,
        grant,
        collectionId,
        feature_id=None,
        bbox=bbox,
        bbox_crs=bbox_crs,
        limit=limit,
        offset=offset,
        properties=properties,
        sortby=sortby,
        crs=crs,
        force=force,
        period=period,
        baseline=baseline,
        scheme=scheme,
        categories=categories,
        metric=metric,
    )
    if f == "csv":
        return _csv(page)
    base = f"{_base(request)}/collections/{collectionId}/items"
    query = {k: v for k, v in request.query_params.items() if k not in ("offset", "f")}

    def link(rel: str, at: int, media: str = GEOJSON, fmt: str | None = None) -> dict[str, str]:
        params = {**query, "offset": str(at), **({"f": fmt} if fmt else {})}
        return {"href": f"{base}?{urlencode(params)}", "rel": rel, "type": media}

    links = [link("self", offset), link("alternate", offset, CSV, "csv")]
    if offset + limit < page.number_matched:
        links.append(link("next", offset + limit))
    if offset > 0:
        links.append(link("prev", max(0, offset - limit)))
    body = {
        "type": "FeatureCollection",
        "numberMatched": page.number_matched,
        "numberReturned": len(page.features),
        "links": links,
        "harmmap": _metadata(page),
        "features": page.features,
    }
    return Response(geojson_bytes(body), media_type=GEOJSON, headers=_crs_header(out_crs))


@router.get(
    "/collections/{collectionId}/items/{featureId}",
    summary="One feature, with harm",
    responses=geojson_responses("GeoJSON Feature"),
)
def get_item(
    collectionId: str,  # noqa: N803 - the OGC API path parameter name
    featureId: str,  # noqa: N803
    request: Request,
    conn: ConnectionDep,
    settings: SettingsDep,
    grant: GrantDep,
    crs: Annotated[str | None, Query(max_length=100)] = None,
    period: Annotated[str | None, Query(max_length=40)] = None,
    baseline: Annotated[str | None, Query(max_length=40)] = None,
    scheme: Annotated[str, Query(max_length=60, pattern=r"^[A-Za-z0-9_.-]+$")] = "ons-css",
    categories: Text = None,
    metric: str = "harm_rate",
    properties: Text = None,
) -> Response:
    """One feature by its code (an H3 cell's hexadecimal index for H3 collections)."""
    if len(featureId) > 20 or not featureId.isalnum():
        raise InvalidParameterError("featureId", f"{featureId[:40]!r} is not an area code or H3 cell")
    page, out_crs = _items(
        request,
        conn,
        settings,
        grant,
        collectionId,
        feature_id=featureId,
        bbox=None,
        bbox_crs=None,
        limit=1,
        offset=0,
        properties=properties,
        sortby=None,
        crs=crs,
        force=None,
        period=period,
        baseline=baseline,
        scheme=scheme,
        categories=categories,
        metric=metric,
    )
    if not page.features:
        raise NotFoundError(f"no feature {featureId!r} in {collectionId}", parameter="featureId")
    feature = page.features[0] | {
        "links": [
            {"href": str(request.url), "rel": "self", "type": GEOJSON},
            {
                "href": f"{_base(request)}/collections/{collectionId}",
                "rel": "collection",
                "type": "application/json",
            },
        ]
    }
    return Response(geojson_bytes(feature), media_type=GEOJSON, headers=_crs_header(out_crs))


def _record_items(
    request: Request,
    conn: Any,
    settings: Settings,
    grant: Grant,
    coll: RecordCollection,
    *,
    force: str | None,
    bbox: str | None,
    bbox_crs: str | None,
    crs: str | None,
    period: str | None,
    limit: int,
    offset: int,
) -> Response:
    # The grant names the analyst's own force; asking for another was refused before this ran.
    code = grant.force_code
    assert code is not None
    out_crs = geo_collections.parse_crs(crs)
    box = geo_collections.parse_bbox(bbox, geo_collections.parse_crs(bbox_crs, "bbox-crs"))
    chosen = period_or_baseline(settings, period)
    features, matched = record_page(
        conn, coll, force_code=code, period=chosen, crs=out_crs, limit=limit, offset=offset, bbox=box
    )
    grant.returned(len(features))
    base = f"{_base(request)}/collections/{coll.id}/items"
    query = {k: v for k, v in request.query_params.items() if k != "offset"}
    links = [{"href": f"{base}?{urlencode({**query, 'offset': offset})}", "rel": "self", "type": GEOJSON}]
    if offset + limit < matched:
        links.append(
            {
                "href": f"{base}?{urlencode({**query, 'offset': offset + limit})}",
                "rel": "next",
                "type": GEOJSON,
            }
        )
    body = {
        "type": "FeatureCollection",
        "numberMatched": matched,
        "numberReturned": len(features),
        "links": links,
        "harmmap": {"classification": "OFFICIAL-SENSITIVE", "force": code, "period": chosen.label},
        "features": features,
    }
    return Response(geojson_bytes(body), media_type=GEOJSON, headers=_crs_header(out_crs))


def _metadata(page: FeaturePage) -> dict[str, Any]:
    first = page.results[0] if page.results else None
    return {
        "forces": page.forces,
        "period": first.period.label if first else None,
        "baseline": first.baseline.label if first and first.baseline else None,
        "scheme": first.scheme if first else None,
        "scheme_version": first.scheme_version if first else None,
        "population_source": first.population_source if first else None,
        "caveats": first.caveats if first else [],
        "notes": sorted({n for r in page.results for n in r.notes}),
    }


def _csv(page: FeaturePage) -> Response:
    buffer = io.StringIO()
    rows = [f["properties"] for f in page.features]
    columns = list(rows[0]) if rows else ["code"]
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, dict) else v for k, v in row.items()})
    return Response(buffer.getvalue(), media_type=CSV, headers={"Content-Disposition": "inline"})
