"""Map layers: one value per area, with its interval, class and caveats, for maps and downloads.

The web map, the print maps and the table downloads all read this module, so what a workshop sees on
paper is what the map page shows. Each layer is computed by the analysis module that owns it (harm,
trauma, disparity, demand, hot spots); this module picks the mapped value, its interval and the fields
a popup needs, and classes the values (``harm_index.classes``).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, text

from harm_index import classes as classing
from harm_index.demand import PersistentRule, call_demand
from harm_index.disclosure import Disclosure
from harm_index.disparity import stop_search_disparity
from harm_index.hotspots import hotspots
from harm_index.periods import Period
from harm_index.population import (
    BROAD_GROUPS,
    COMPARISON_GROUP,
    POPULATION_SOURCE,
    area_names,
    residents_by_group,
)
from harm_index.scores import area_harm
from harm_index.trauma import TraumaConfig, trauma_scores
from harm_index.weights import Scheme
from harmmap.errors import InvalidParameterError

# Sources held by forces (OFFICIAL-SENSITIVE), as against published open data.
RESTRICTED_SOURCES = frozenset({"calls", "offences"})
HOTSPOT_CLASSES = ("hot spot", "cold spot", "not significant", "not tested")
HOTSPOT_COLOURS = ("#D55E00", "#0072B2", "#f0f0f0", "#bdbdbd")
H3_LEVELS = ("h3_7", "h3_8", "h3_9")


@dataclass(frozen=True)
class LayerSpec:
    """What a layer shows and how it is drawn."""

    id: str
    title: str
    unit: str
    levels: tuple[str, ...]
    scale: str  # sequential, diverging or categorical
    sources: tuple[str, ...]
    description: str
    # Breaks with a meaning of their own (e.g. around a ratio of 1); None: classed from the data.
    fixed_bins: tuple[float, ...] | None = None
    grouped: bool = False  # takes an ethnic group parameter
    # The value sums over the period (e.g. harm per 1,000 residents), so periods of different lengths
    # compare only per year.
    cumulative: bool = False
    # For layers that do not change with the period: the dataset's own date, shown instead of a period.
    as_of: str | None = None

    @property
    def restricted(self) -> bool:
        """True when the layer draws on force-held (OFFICIAL-SENSITIVE) records."""
        return bool(RESTRICTED_SOURCES & set(self.sources))


LAYERS: dict[str, LayerSpec] = {
    spec.id: spec
    for spec in (
        LayerSpec(
            "harm_rate",
            "Crime harm per 1,000 residents",
            "CSS days per 1,000 residents",
            ("ward", "lsoa21", "local_authority", *H3_LEVELS),
            "sequential",
            ("police_uk_street",),
            "Recorded crime weighted by the Crime Severity Score, per 1,000 Census 2021 usual residents "
            "(H3 cells have no residents: harm in CSS days).",
            cumulative=True,
        ),
        LayerSpec(
            "harm",
            "Crime harm",
            "CSS days",
            ("ward", "lsoa21", "local_authority", *H3_LEVELS),
            "sequential",
            ("police_uk_street",),
            "Recorded crime weighted by the Crime Severity Score: the sum of count x weight, in days.",
            cumulative=True,
        ),
        LayerSpec(
            "incident_rate_smoothed",
            "Recorded crimes per 1,000 residents, smoothed",
            "crimes per 1,000 residents (empirical Bayes)",
            ("ward", "lsoa21", "local_authority"),
            "sequential",
            ("police_uk_street",),
            "Crimes per 1,000 residents shrunk towards the force rate by global empirical Bayes (Marshall "
            "1991), so small areas with few residents do not dominate the map.",
            cumulative=True,
        ),
        LayerSpec(
            "change",
            "Harm change against the baseline",
            "ratio of monthly harm to the baseline's",
            ("ward", "lsoa21", "local_authority"),
            "diverging",
            ("police_uk_street",),
            "Mean monthly harm in the period divided by the baseline's; 1 is no change.",
            fixed_bins=(0.67, 0.9, 1.1, 1.5),
        ),
        LayerSpec(
            "trauma",
            "Community trauma score",
            "score (IMD method, 0-100 scale per domain)",
            ("ward", "lsoa21"),
            "sequential",
            ("police_uk_street", "stop_search", "calls", "imd2019"),
            "Composite of harm, calls for service, police powers and deprivation (IMD method).",
        ),
        LayerSpec(
            "deprivation",
            "Deprivation decile (IMD 2019)",
            "national decile, 1 = most deprived",
            ("ward", "lsoa21"),
            "sequential",
            ("imd2019",),
            "IMD 2019 national decile of each LSOA (mapped from LSOA 2011); for wards the resident-weighted "
            "mean decile of their LSOAs.",
            fixed_bins=tuple(float(d) for d in range(1, 11)),
            as_of="IMD 2019",
        ),
        LayerSpec(
            "ethnic_share",
            "Share of residents by ethnic group",
            "% of usual residents",
            ("ward", "lsoa21", "local_authority"),
            "sequential",
            ("census2021",),
            "Census 2021 usual residents of the chosen broad ethnic group as a share of all residents.",
            grouped=True,
            as_of="Census 2021",
        ),
        LayerSpec(
            "stop_search",
            "Stop-and-search disproportionality",
            f"rate ratio against {COMPARISON_GROUP} residents",
            ("ward", "local_authority"),
            "diverging",
            ("stop_search",),
            f"Searches per 1,000 residents of the chosen group divided by the {COMPARISON_GROUP} rate "
            "(self-defined ethnicity), with the Katz 95% interval.",
            fixed_bins=(0.8, 1.25, 2.0, 4.0),
            grouped=True,
        ),
        LayerSpec(
            "calls",
            "Calls for service per 1,000 residents",
            "calls per 1,000 residents, persistent callers excluded",
            ("ward", "lsoa21", "local_authority"),
            "sequential",
            ("calls",),
            "All calls per 1,000 residents without the calls of persistent callers; popups give both.",
            cumulative=True,
        ),
        LayerSpec(
            "hotspots",
            "Hot spots of harm (Getis-Ord Gi*)",
            "class (FDR-controlled)",
            ("ward", "lsoa21", *H3_LEVELS),
            "categorical",
            ("police_uk_street",),
            "Clusters of high or low harm rate by Gi* with conditional permutations, FDR-controlled.",
        ),
    )
}


@dataclass(frozen=True)
class LayerQuery:
    """The parameters of one layer request."""

    layer: str
    force_code: str
    level: str
    period: Period
    baseline: Period
    scheme: Scheme
    disclosure: Disclosure
    trauma: TraumaConfig
    rule: PersistentRule
    group: str = "Black"
    method: str = "quantiles"
    k: int = 5


@dataclass
class LayerArea:
    """One area's mapped value and what its popup shows."""

    code: str
    name: str
    value: float | None
    low: float | None = None
    high: float | None = None
    category: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    withheld: dict[str, str] = field(default_factory=dict)
    reason: str | None = None
    class_index: int | None = None


@dataclass
class LayerValues:
    """A layer's values for every area of a level in a force, classed, with its provenance."""

    spec: LayerSpec
    force_code: str
    level: str
    period: Period
    baseline: Period | None
    group: str | None
    areas: list[LayerArea]
    classes: classing.Classes
    caveats: list[str]
    method: dict[str, Any]
    synthetic: bool = False
    restricted: bool = False

    @property
    def title(self) -> str:
        """The layer's title, naming the group for grouped layers."""
        if self.spec.grouped and self.group:
            return f"{self.spec.title}: {self.group}"
        return self.spec.title


def layer_spec(layer: str) -> LayerSpec:
    """The layer called ``layer``; refuses unknown names with the known ones."""
    spec = LAYERS.get(layer)
    if spec is None:
        raise InvalidParameterError("layer", f"{layer!r} is not a map layer", allowed=list(LAYERS))
    return spec


def layer_values(conn: Connection, query: LayerQuery) -> LayerValues:
    """Compute, class and describe one layer."""
    spec = layer_spec(query.layer)
    if query.level not in spec.levels:
        raise InvalidParameterError(
            "level", f"{query.level!r} is not a level of the {spec.id} layer", allowed=list(spec.levels)
        )
    if spec.grouped:
        choices = [g for g in BROAD_GROUPS if spec.id == "ethnic_share" or g != COMPARISON_GROUP]
        if query.group not in choices:
            raise InvalidParameterError("group", f"{query.group!r} is not a group here", allowed=choices)
    classing.check_method(query.method, query.k)
    values = _BUILDERS[spec.id](conn, query, spec)
    _complete(conn, values)
    _classify(values, query)
    values.restricted = spec.restricted or not query.disclosure.active
    values.method.setdefault("disclosure", query.disclosure.describe())
    values.method["classes"] = values.classes.method
    return values


def compare(conn: Connection, before: LayerQuery, after: LayerQuery) -> tuple[LayerValues, LayerValues]:
    """The same layer for two periods, per year where the value sums over the period, classed together.

    Both get the classes of their values pooled, so a colour means the same on both maps.
    """
    first, second = layer_values(conn, before), layer_values(conn, after)
    if first.spec.cumulative:
        for values in (first, second):
            _per_year(values)
    pooled = dataclasses.replace(second, areas=[*first.areas, *second.areas])
    _classify(pooled, after)
    for values in (first, second):
        values.classes = pooled.classes
        for area in values.areas:
            area.class_index = pooled.classes.assign(
                area.category if values.spec.scale == "categorical" else area.value
            )
    return first, second


def _complete(conn: Connection, values: LayerValues) -> None:
    """Add the level's areas the layer has no figures for, each with the reason, so none goes missing."""
    if values.level.startswith("h3_"):
        return  # H3 collections hold only the cells with data
    present = {a.code for a in values.areas}
    reason = (
        "no figures: no LSOA 2021 is best-fitted to this ward, and figures are built from LSOAs"
        if values.level == "ward"
        else "no figures for this area in this layer"
    )
    for code, name in sorted(area_names(conn, values.level, values.force_code).items()):
        if code not in present:
            values.areas.append(LayerArea(code, name, None, reason=reason))


def _per_year(values: LayerValues) -> None:
    factor = 12 / values.period.months
    for area in values.areas:
        area.value, area.low, area.high = (
            None if v is None else v * factor for v in (area.value, area.low, area.high)
        )
    values.method["value"] = f"{values.method.get('value', values.spec.unit)}, per year"
    values.caveats = [
        *values.caveats,
        f"Values are per year: the period's totals x 12 / {values.period.months}.",
    ]


def _classify(values: LayerValues, query: LayerQuery) -> None:
    spec = values.spec
    if spec.scale == "categorical":
        values.classes = classing.categorical(
            [a.category for a in values.areas], HOTSPOT_CLASSES, HOTSPOT_COLOURS
        )
    elif spec.fixed_bins is not None:
        values.classes = classing.fixed(
            [a.value for a in values.areas],
            spec.fixed_bins,
            scale=spec.scale,
            method="deciles" if spec.id == "deprivation" else "fixed",
        )
    else:
        values.classes = classing.classify(
            [a.value for a in values.areas], query.method, query.k, scale=spec.scale
        )
    for area in values.areas:
        area.class_index = values.classes.assign(area.category if spec.scale == "categorical" else area.value)


def _empty(query: LayerQuery, spec: LayerSpec, **kw: Any) -> LayerValues:
    return LayerValues(
        spec=spec,
        force_code=query.force_code,
        level=query.level,
        period=query.period,
        baseline=kw.pop("baseline", None),
        group=query.group if spec.grouped else None,
        areas=[],
        classes=classing.Classes(method="none", colours=[], labels=[]),
        caveats=[],
        method={},
        **kw,
    )


def _harm(conn: Connection, query: LayerQuery, spec: LayerSpec) -> LayerValues:
    change = spec.id == "change"
    result = area_harm(
        conn,
        level=query.level,
        force_code=query.force_code,
        period=query.period,
        scheme=query.scheme,
        baseline=query.baseline if change else None,
    )
    out = _empty(query, spec, baseline=query.baseline if change else None)
    h3 = query.level.startswith("h3_")
    for a in result.areas:
        if change:
            value = a.change.ratio if a.change else None
            interval = (a.change.lower, a.change.upper) if a.change else (None, None)
        elif spec.id == "incident_rate_smoothed":
            value, interval = a.incident_rate_smoothed, (None, None)
        elif h3 or spec.id == "harm":
            value, interval = a.harm, a.harm_interval
        else:
            value = a.harm_rate
            interval = a.harm_rate_interval or (None, None)
        shares = sorted(a.harm_share.items(), key=lambda kv: -kv[1])[:3]
        row: dict[str, Any] = {
            "incidents": a.incidents,
            "harm": round(a.harm, 1),
            "population": a.population,
            "harm_rate": a.harm_rate,
            "largest_shares_of_harm": ", ".join(f"{k} {v:.0%}" for k, v in shares) or None,
            **({"change_significant": a.change.significant} if change and a.change else {}),
            "value": value,
            "low": interval[0],
            "high": interval[1],
        }
        # The shared disclosure rule withholds a small count and everything built on it.
        query.disclosure.apply([row], {"incidents": [k for k in row if k not in ("incidents", "population")]})
        withheld = row.pop("withheld")
        shown, low, high = row.pop("value"), row.pop("low"), row.pop("high")
        out.areas.append(
            LayerArea(
                a.code, a.name, shown, low, high, details=row, withheld=withheld, reason=a.no_rate_reason
            )
        )
    out.caveats = list(result.caveats)
    out.method = {
        "scheme": result.scheme,
        "scheme_version": result.scheme_version,
        "population_source": result.population_source,
        "value": "harm (CSS days)" if h3 and spec.id == "harm_rate" else spec.unit,
    }
    return out


def _trauma(conn: Connection, query: LayerQuery, spec: LayerSpec) -> LayerValues:
    result = trauma_scores(
        conn,
        level=query.level,
        force_code=query.force_code,
        period=query.period,
        scheme=query.scheme,
        config=query.trauma,
        rule=query.rule,
    )
    out = _empty(query, spec, synthetic=result.synthetic)
    for a in result.areas:
        contributions = {d: round(v["contribution"], 2) for d, v in a.get("domains", {}).items()}
        details = {"rank": a.get("rank"), "decile": a.get("decile"), "contributions": contributions}
        out.areas.append(LayerArea(a["code"], a.get("name", a["code"]), a.get("score"), details=details))
    out.caveats = list(result.caveats)
    out.method = {
        "scheme": result.scheme,
        "scheme_version": result.scheme_version,
        "config_version": result.config_version,
        "weights": result.weights,
        "domains_left_out": result.domains_left_out,
        "population_source": POPULATION_SOURCE,
    }
    return out


def _deprivation(conn: Connection, query: LayerQuery, spec: LayerSpec) -> LayerValues:
    rows = conn.execute(
        text(
            """
            SELECT a.code, a.name, a.ward_code, avg(i.decile)::float8 AS decile,
                   (SELECT sum(c.residents) FROM census2021_ethnicity c
                    WHERE c.area_level = 'lsoa21' AND c.area_code = a.code) AS residents
            FROM areas a
            JOIN lookup_lsoa11_lsoa21 l ON l.lsoa21_code = a.code
            JOIN imd2019_lsoa11 i ON i.lsoa11_code = l.lsoa11_code AND i.measure = 'IMD'
            WHERE a.level = 'lsoa21' AND a.force_code = :force
            GROUP BY a.code, a.name, a.ward_code
            """
        ),
        {"force": query.force_code},
    ).all()
    out = _empty(query, spec)
    if query.level == "lsoa21":
        for code, name, _ward, decile, residents in rows:
            details = {"residents": residents, "imd_decile": decile}
            out.areas.append(LayerArea(code, name, decile, details=details))
    else:
        wards: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
        for _code, _name, ward, decile, residents in rows:
            pop = float(residents or 0)
            totals = wards[ward]
            totals[0] += decile * pop
            totals[1] += pop
            totals[2] += 1
            totals[3] += 1 if decile <= 1 else 0
        names = area_names(conn, "ward", query.force_code)
        for ward, (weighted, pop, lsoas, most) in sorted(wards.items()):
            value = weighted / pop if pop else None
            details = {"lsoas": int(lsoas), "lsoas_in_most_deprived_decile": int(most), "residents": int(pop)}
            out.areas.append(LayerArea(ward, names.get(ward, ward), value, details=details))
    out.caveats = [
        "IMD 2019 ranks LSOA 2011 areas nationally; LSOA 2021 areas take the mean decile of the 2011 areas "
        "they come from.",
        "A ward's value is the resident-weighted mean decile of its LSOAs, not an official ward decile.",
        "Deprivation describes places, not every person living in them.",
    ]
    out.method = {
        "source": "English Indices of Deprivation 2019 (MHCLG), IMD decile",
        "population_source": POPULATION_SOURCE,
    }
    return out


def _ethnic_share(conn: Connection, query: LayerQuery, spec: LayerSpec) -> LayerValues:
    residents = residents_by_group(conn, query.level, query.force_code)
    names = area_names(conn, query.level, query.force_code)
    out = _empty(query, spec)
    for code, groups in sorted(residents.items()):
        total = sum(groups.values())
        value = 100 * groups[query.group] / total if total else None
        details = {"residents": total, f"{query.group.lower()}_residents": groups[query.group]}
        reason = None if total else "no usual residents"
        out.areas.append(LayerArea(code, names.get(code, code), value, details=details, reason=reason))
    out.caveats = [
        "Census 2021 counts usual residents on 21 March 2021; populations have changed since.",
        "Broad groups hide large differences within them.",
    ]
    out.method = {"population_source": POPULATION_SOURCE}
    return out


def _stop_search(conn: Connection, query: LayerQuery, spec: LayerSpec) -> LayerValues:
    result = stop_search_disparity(
        conn,
        level=query.level,
        force_code=query.force_code,
        period=query.period,
        disclosure=query.disclosure,
    )
    out = _empty(query, spec)
    for row in result.rates:
        if row["group"] != query.group:
            continue
        interval = row.get("ratio_interval") or (None, None)
        details = {
            "searches": row.get("searches"),
            "residents": row.get("residents"),
            "rate_per_1000": row.get("rate"),
            "rate_interval": row.get("rate_interval"),
            "significant": row.get("significant"),
        }
        out.areas.append(
            LayerArea(
                row["code"],
                row.get("name", row["code"]),
                row.get("ratio"),
                interval[0],
                interval[1],
                details=details,
                withheld=dict(row.get("withheld") or {}),
                reason=row.get("ratio_reason"),
            )
        )
    out.caveats = list(result.caveats)
    out.method = {**result.method, "basis": result.basis}
    return out


def _calls(conn: Connection, query: LayerQuery, spec: LayerSpec) -> LayerValues:
    result = call_demand(
        conn,
        level=query.level,
        force_code=query.force_code,
        period=query.period,
        rule=query.rule,
        disclosure=query.disclosure,
    )
    out = _empty(query, spec, synthetic=result.synthetic)
    for area in result.areas:
        every = next((g for g in area["groups"] if g["group"] == "all"), None)
        if every is None:
            continue
        interval = every.get("rate_without_persistent_interval") or (None, None)
        details = {
            "calls": every.get("calls"),
            "calls_from_persistent_callers": every.get("from_persistent_callers"),
            "rate_with_persistent": every.get("rate"),
            "residents": area.get("residents"),
            "synthetic": area.get("synthetic"),
        }
        out.areas.append(
            LayerArea(
                area["code"],
                area.get("name", area["code"]),
                every.get("rate_without_persistent"),
                interval[0],
                interval[1],
                details=details,
                withheld=dict(every.get("withheld") or {}),
            )
        )
    out.caveats = list(result.caveats)
    out.method = dict(result.method)
    return out


def _hotspots(conn: Connection, query: LayerQuery, spec: LayerSpec) -> LayerValues:
    result = hotspots(
        conn,
        level=query.level,
        force_code=query.force_code,
        period=query.period,
        scheme=query.scheme,
    )
    names = {} if query.level.startswith("h3_") else area_names(conn, query.level, query.force_code)
    out = _empty(query, spec)
    for a in result.areas:
        category = a["gi_class"] if a.get("tested") else "not tested"
        details = {
            "value": a.get("value"),
            "gi_z": a.get("gi_z"),
            "gi_p": a.get("gi_p"),
            "local_moran_class": a.get("moran_class"),
        }
        out.areas.append(
            LayerArea(
                a["code"], names.get(a["code"], a["code"]), a.get("gi_z"), category=category, details=details
            )
        )
    out.caveats = list(result.caveats)
    out.method = {**result.method, "scheme": result.scheme, "scheme_version": result.scheme_version}
    return out


_BUILDERS: dict[str, Callable[[Connection, LayerQuery, LayerSpec], LayerValues]] = {
    "harm_rate": _harm,
    "harm": _harm,
    "incident_rate_smoothed": _harm,
    "change": _harm,
    "trauma": _trauma,
    "deprivation": _deprivation,
    "ethnic_share": _ethnic_share,
    "stop_search": _stop_search,
    "calls": _calls,
    "hotspots": _hotspots,
}


_MONTHS_CACHE: dict[tuple[object, ...], dict[str, list[str]]] = {}


def months_with_data(conn: Connection) -> dict[str, list[str]]:
    """The months (YYYY-MM) for which each force has street crime, stop and search or calls loaded.

    Scanning the record tables on every map page load would grow with them; the answer changes only
    when a batch is loaded or removed, so it is kept against the batches' newest id and count.
    """
    key = tuple(conn.execute(text("SELECT max(id), count(*) FROM ingest_batches")).one())
    cached = _MONTHS_CACHE.get(key)
    if cached is not None:
        return cached
    rows = conn.execute(
        text(
            """
            SELECT force_code, period_start AS month FROM harm_census_counts
            WHERE level = 1 AND span = 1
              AND source = (SELECT id FROM harm_sources WHERE name = 'police_uk_street')
            UNION SELECT force_code, month FROM stop_searches
            UNION SELECT force_code, month FROM calls
            ORDER BY 1, 2
            """
        )
    )
    out: dict[str, list[str]] = defaultdict(list)
    for force, month in rows:
        out[force].append(f"{month:%Y-%m}")
    _MONTHS_CACHE.clear()
    _MONTHS_CACHE[key] = dict(out)
    return _MONTHS_CACHE[key]
