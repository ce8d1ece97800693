"""Feature pages for the map API: a collection's areas with harm for the request's analysis parameters.

Harm is computed per force from the aggregate (``harm_index.scores.area_harm``) for every area the query
matches, so sorting by a harm property is correct across pages; geometry is read for the page only.
Disclosure control withholds small counts, and every rate or interval built on them, marking each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, text

from geo.collections import AREA_PROPERTIES, H3_PROPERTIES, Collection, geometries, match
from geo.versions import store_version
from harm_index.disclosure import Disclosure
from harm_index.periods import Period
from harm_index.scores import AreaHarm, HarmResult, area_harm
from harm_index.weights import Scheme
from harmmap.errors import InvalidParameterError

HARM_PROPERTIES = (
    "incidents",
    "incidents_low",
    "incidents_high",
    "harm",
    "harm_low",
    "harm_high",
    "population",
    "harm_rate",
    "harm_rate_low",
    "harm_rate_high",
    "incident_rate",
    "incident_rate_smoothed",
    "change_ratio",
    "change_low",
    "change_high",
    "change_significant",
    "no_rate_reason",
    "value",
)
METRICS = ("harm_rate", "harm", "incidents", "incident_rate", "incident_rate_smoothed", "change_ratio")
_DERIVED = [p for p in HARM_PROPERTIES if p not in ("incidents", "population", "no_rate_reason")]


@dataclass
class FeaturePage:
    """One page of features and what a client needs to page on and interpret it."""

    features: list[dict[str, Any]]
    number_matched: int
    forces: list[str]
    results: list[HarmResult] = field(default_factory=list)


def forces_with_data(conn: Connection, source: str = "police_uk_street") -> list[str]:
    """Force areas that have incidents in the aggregate (one index probe per force)."""
    return list(
        conn.execute(
            text(
                "SELECT a.code FROM areas a WHERE a.level = 'force' AND EXISTS ("
                "SELECT 1 FROM harm_census_counts h "
                "WHERE h.source = (SELECT id FROM harm_sources WHERE name = :source) "
                "AND h.force_code = a.code AND h.level = 1) ORDER BY a.code"
            ),
            {"source": source},
        ).scalars()
    )


@dataclass
class AreaValues:
    """Harm properties for every area of a collection (and, for H3, which force each cell is in)."""

    metrics: dict[str, dict[str, Any]]
    cells: dict[str, str]
    forces: list[str]
    results: list[HarmResult]


_VALUES_CACHE: dict[tuple[object, ...], AreaValues] = {}
VALUE_TABLES = ("areas", "census2021_ethnicity", "harm_aggregate", "harm_keys")


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise InvalidParameterError("metric", f"{metric[:40]!r} is not a metric", allowed=list(METRICS))


def area_values(
    conn: Connection,
    coll: Collection,
    *,
    period: Period,
    scheme: Scheme,
    force_code: str | None = None,
    baseline: Period | None = None,
    categories: list[str] | None = None,
    metric: str = "harm_rate",
    disclosure: Disclosure,
    version: str | None = None,
) -> AreaValues:
    """Harm properties of the collection's areas, disclosure applied; cached until the data changes.

    ``version`` is ``store_version(conn, *VALUE_TABLES)`` when the caller has already read it.
    """
    _check_metric(metric)
    key = (
        version or store_version(conn, *VALUE_TABLES),
        coll.id,
        period,
        scheme.name,
        scheme.version,
        force_code,
        baseline,
        tuple(categories or ()),
        metric,
        disclosure,
    )
    cached = _VALUES_CACHE.get(key)
    if cached is not None:
        return cached
    forces = [force_code] if force_code else forces_with_data(conn)
    metrics: dict[str, dict[str, Any]] = {}
    cells: dict[str, str] = {}
    results = []
    for force in forces:
        result = area_harm(
            conn,
            level=coll.level,
            force_code=force,
            period=period,
            scheme=scheme,
            categories=categories,
            baseline=baseline,
        )
        results.append(result)
        for area in result.areas:
            metrics[area.code] = _harm_properties(area, metric)
            if coll.h3_resolution is not None:
                cells[area.code] = force
    disclosure.apply(metrics.values(), {"incidents": _DERIVED})
    values = AreaValues(metrics, cells, forces, results)
    if len(_VALUES_CACHE) > 64:
        _VALUES_CACHE.clear()
    _VALUES_CACHE[key] = values
    return values


def allowed_properties(coll: Collection) -> tuple[str, ...]:
    """Every property a feature of the collection can carry."""
    base = H3_PROPERTIES if coll.h3_resolution is not None else AREA_PROPERTIES
    return (*base, *HARM_PROPERTIES, "withheld")


def feature_page(
    conn: Connection,
    coll: Collection,
    *,
    period: Period,
    scheme: Scheme,
    crs: str,
    limit: int,
    offset: int,
    force_code: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    baseline: Period | None = None,
    categories: list[str] | None = None,
    metric: str = "harm_rate",
    sortby: list[str] | None = None,
    properties: list[str] | None = None,
    disclosure: Disclosure | None = None,
    feature_id: str | None = None,
) -> FeaturePage:
    """Features ``offset`` .. ``offset + limit`` of the collection, in ``crs``, with harm properties."""
    _check_metric(metric)
    allowed = allowed_properties(coll)
    for name in properties or []:
        if name not in allowed:
            raise InvalidParameterError("properties", f"{name!r} is not a property", allowed=list(allowed))
    order = _sort_keys(sortby, allowed)
    values = area_values(
        conn,
        coll,
        period=period,
        scheme=scheme,
        force_code=force_code,
        baseline=baseline,
        categories=categories,
        metric=metric,
        disclosure=disclosure or Disclosure(),
    )
    metrics, cells, forces, results = values.metrics, values.cells, values.forces, values.results
    matched = match(conn, coll, force_code=force_code, bbox=bbox, h3_cells=cells)
    codes = sorted(matched)
    if feature_id is not None:
        codes = [c for c in codes if c == feature_id]
    rows = [{**matched[c], **metrics.get(c, _no_data())} for c in codes]
    # Stable sorts from the last key to the first; areas without a value always come last.
    for key, descending in reversed(order):
        present = [r for r in rows if r.get(key) is not None]
        present.sort(key=itemgetter(key), reverse=descending)
        rows = present + [r for r in rows if r.get(key) is None]
    page = rows[offset : offset + limit]
    shapes = geometries(conn, coll, [r["code"] for r in page], crs)
    keep = properties or list(allowed)
    features = [
        {
            "type": "Feature",
            "id": r["code"],
            "geometry": shapes.get(r["code"]),
            "properties": {k: r.get(k) for k in keep if k in r or k in HARM_PROPERTIES},
        }
        for r in page
    ]
    return FeaturePage(features, len(rows), forces, results)


def _sort_keys(sortby: list[str] | None, allowed: tuple[str, ...]) -> list[tuple[str, bool]]:
    keys = []
    for item in sortby or ["+code"]:
        name = item.strip()
        descending = name.startswith("-")
        name = name.lstrip("+-")
        if name not in allowed or name == "withheld":
            raise InvalidParameterError(
                "sortby", f"{name!r} is not a sortable property", allowed=list(allowed)
            )
        keys.append((name, descending))
    return keys


def _harm_properties(area: AreaHarm, metric: str) -> dict[str, Any]:
    change = area.change
    props: dict[str, Any] = {
        "incidents": area.incidents,
        "incidents_low": area.incidents_interval[0],
        "incidents_high": area.incidents_interval[1],
        "harm": area.harm,
        "harm_low": area.harm_interval[0],
        "harm_high": area.harm_interval[1],
        "population": area.population,
        "harm_rate": area.harm_rate,
        "harm_rate_low": area.harm_rate_interval[0] if area.harm_rate_interval else None,
        "harm_rate_high": area.harm_rate_interval[1] if area.harm_rate_interval else None,
        "incident_rate": area.incident_rate,
        "incident_rate_smoothed": area.incident_rate_smoothed,
        "change_ratio": change.ratio if change else None,
        "change_low": change.lower if change else None,
        "change_high": change.upper if change else None,
        "change_significant": change.significant if change else None,
        "no_rate_reason": area.no_rate_reason,
    }
    props["value"] = props[metric]
    return props


def _no_data() -> dict[str, Any]:
    return dict.fromkeys(HARM_PROPERTIES) | {
        "no_rate_reason": "no records are loaded for this area's force",
        "withheld": {},
    }
