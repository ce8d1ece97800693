"""The web map page (``/map``), its assets, and the layer values it colours the tiles with.

The page draws outlines from the vector tiles and colours them with ``/map/layers/{layer}``: one value
and class per area, classed on the server (``harm_index.classes``), so the page, the print maps and the
downloads agree. MapLibre GL JS is installed from npm by the setup script and served from here: no CDN.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import FileResponse, HTMLResponse

from app.deps import ConnectionDep, GrantDep, PrincipalDep, SettingsDep
from geo.areas import force_names
from geo.collections import COLLECTIONS
from geo.frames import label_points
from harm_index.classes import MAX_CLASSES, METHODS, MIN_CLASSES
from harm_index.demand import PersistentRule
from harm_index.maplayers import LAYERS, LayerQuery, LayerValues, layer_spec, layer_values, months_with_data
from harm_index.periods import configured_periods, period_or_baseline
from harm_index.population import BROAD_GROUPS
from harm_index.trauma import TraumaConfig
from harm_index.weights import load_scheme
from harmmap import __version__
from harmmap.access import force_held_forces
from harmmap.errors import NotFoundError, ServiceUnavailableError
from harmmap.settings import Settings

router = APIRouter(tags=["map"])

# Collection that draws each level's outlines.
LEVEL_COLLECTIONS = {c.level: c.id for c in COLLECTIONS.values()}
ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}
PAGE_ASSETS = ("map.js", "map.css")
VENDOR_ASSETS = {"maplibre-gl.js": "maplibre-gl.js", "maplibre-gl.css": "maplibre-gl.css"}


def layer_query(
    layer: str,
    conn: ConnectionDep,
    settings: SettingsDep,
    grant: GrantDep,
    force: Annotated[str, Query(pattern=r"^(E23|W15)\d{6}$", description="Force GSS code, e.g. E23000030")],
    level: Annotated[str, Query(max_length=20, pattern=r"^[a-z0-9_]+$")] = "ward",
    period: Annotated[
        str | None, Query(max_length=40, description="e.g. 2019-04..2020-03, FY2019/20")
    ] = None,
    baseline: Annotated[str | None, Query(max_length=40)] = None,
    scheme: Annotated[str, Query(max_length=60, pattern=r"^[A-Za-z0-9_.-]+$")] = "ons-css",
    group: Annotated[str, Query(max_length=20, description=f"one of {', '.join(BROAD_GROUPS)}")] = "Black",
    classes: Annotated[str, Query(max_length=20, description=f"one of {', '.join(METHODS)}")] = "quantiles",
    k: Annotated[int, Query(ge=MIN_CLASSES, le=MAX_CLASSES, description="number of classes")] = 5,
) -> LayerQuery:
    """A layer request's parameters, checked; shared by the map page and the exports."""
    layer_spec(layer)
    return LayerQuery(
        layer=layer,
        force_code=force,
        level=level,
        period=period_or_baseline(settings, period),
        baseline=period_or_baseline(settings, baseline, "baseline"),
        scheme=load_scheme(conn, scheme),
        disclosure=grant.disclosure(settings.disclosure_threshold),
        trauma=TraumaConfig(settings.trauma_weights),
        rule=PersistentRule(settings.persistent_min_calls, settings.persistent_window_days),
        group=group,
        method=classes,
        k=k,
    )


LayerQueryDep = Annotated[LayerQuery, Depends(layer_query)]


def layer_body(values: LayerValues, points: dict[str, tuple[float, float]] | None = None) -> dict[str, Any]:
    """The JSON a map client needs for one layer."""
    return {
        "layer": values.spec.id,
        "title": values.title,
        "unit": values.spec.unit,
        "scale": values.spec.scale,
        "force": values.force_code,
        "level": values.level,
        "collection": LEVEL_COLLECTIONS.get(values.level),
        "period": {
            "label": values.period.label,
            "start": f"{values.period.start:%Y-%m}",
            "end": f"{values.period.end:%Y-%m}",
            "months": values.period.months,
        },
        "baseline": None
        if values.baseline is None
        else {
            "label": values.baseline.label,
            "start": f"{values.baseline.start:%Y-%m}",
            "end": f"{values.baseline.end:%Y-%m}",
        },
        "group": values.group,
        "classes": dataclasses.asdict(values.classes),
        "areas": [
            {
                "code": a.code,
                "name": a.name,
                "value": a.value,
                "low": a.low,
                "high": a.high,
                "category": a.category,
                "class": a.class_index,
                "details": a.details,
                "withheld": a.withheld,
                "reason": a.reason,
                **({"point": points[a.code]} if points and a.code in points else {}),
            }
            for a in values.areas
        ],
        "caveats": values.caveats,
        "synthetic": values.synthetic,
        "restricted": values.restricted,
        "metadata": {"service_version": __version__, **values.method},
    }


@router.get("/map", response_class=HTMLResponse, summary="The interactive web map", include_in_schema=True)
def map_page(settings: SettingsDep, _principal: PrincipalDep) -> HTMLResponse:
    """The map page; it needs MapLibre GL JS installed by the setup script."""
    _vendor_dir(settings)
    page = (settings.web_dir / "map" / "index.html").read_text(encoding="utf-8")
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})


@router.get("/map/assets/{name}", summary="The map page's own script and style", include_in_schema=False)
def map_asset(name: str, settings: SettingsDep, _principal: PrincipalDep) -> FileResponse:
    """One of the page's files, by name from a fixed list (no paths from the request reach the disk)."""
    if name not in PAGE_ASSETS:
        raise NotFoundError(f"no map asset {name[:60]!r}")
    return _file(settings.web_dir / "map" / name)


@router.get("/map/vendor/{name}", summary="MapLibre GL JS, served locally", include_in_schema=False)
def vendor_asset(name: str, settings: SettingsDep, _principal: PrincipalDep) -> FileResponse:
    """MapLibre's script or style sheet from the npm install."""
    if name not in VENDOR_ASSETS:
        raise NotFoundError(f"no vendor asset {name[:60]!r}")
    return _file(_vendor_dir(settings) / VENDOR_ASSETS[name])


@router.get("/map/catalog", summary="What the map can show: layers, levels, forces, periods")
def catalog(conn: ConnectionDep, settings: SettingsDep, principal: PrincipalDep) -> dict[str, Any]:
    """Layers with their levels and scales, forces with the months they hold, named periods, basemap.

    A layer drawn from force-held data lists the forces the caller may see it for (none for public).
    """
    named = configured_periods(settings)
    months = months_with_data(conn)
    names = force_names(conn)
    return {
        "layers": [
            {
                "id": spec.id,
                "title": spec.title,
                "unit": spec.unit,
                "levels": list(spec.levels),
                "scale": spec.scale,
                "grouped": spec.grouped,
                "fixed_classes": spec.fixed_bins is not None or spec.scale == "categorical",
                "description": spec.description,
                "restricted": spec.restricted,
                "forces": None
                if not spec.restricted
                else force_held_forces(principal, settings.pilot_forces),
                "as_of": spec.as_of,
            }
            for spec in LAYERS.values()
        ],
        "levels": {level: collection for level, collection in LEVEL_COLLECTIONS.items() if level != "force"},
        "groups": list(BROAD_GROUPS),
        "classes": {"methods": list(METHODS), "min": MIN_CLASSES, "max": MAX_CLASSES},
        "forces": [
            {"code": code, "name": names.get(code, code), "months": months.get(code, [])}
            for code in sorted(set(months) | {c for c in names if c in months})
        ],
        "periods": {
            name: {"label": p.label, "start": f"{p.start:%Y-%m}", "end": f"{p.end:%Y-%m}"}
            for name, p in (
                ("baseline", named.baseline),
                ("pre-covid", named.pre_covid),
                ("covid", named.covid),
            )
        },
        "basemap": {"url": settings.basemap_url, "attribution": settings.basemap_attribution}
        if settings.basemap_url
        else None,
    }


@router.get("/map/layers/{layer}", summary="One layer's value, interval and class for every area")
def map_layer(query: LayerQueryDep, conn: ConnectionDep, grant: GrantDep) -> Response:
    """Values to colour the tiles with (by area code), the class breaks and colours, caveats and method."""
    values = layer_values(conn, query)
    grant.returned(len(values.areas))
    points = label_points(conn, query.level, [a.code for a in values.areas])
    body = json.dumps(layer_body(values, points), separators=(",", ":"), default=str)
    return Response(body, media_type="application/json")


def _vendor_dir(settings: Settings) -> Path:
    vendor = settings.web_dir / "node_modules" / "maplibre-gl" / "dist"
    if not (vendor / "maplibre-gl.js").is_file():
        raise ServiceUnavailableError(
            "the web map's MapLibre GL JS is not installed: run scripts/bootstrap.sh (npm ci in web/)"
        )
    return vendor


def _file(path: Path) -> FileResponse:
    return FileResponse(
        path,
        media_type=ASSET_TYPES.get(path.suffix, "application/octet-stream"),
        headers={"Cache-Control": "public, max-age=300"},
    )
