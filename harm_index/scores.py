"""Harm scores per area and period, from the monthly aggregate (never from raw incidents).

For each area: incidents (total and by category), harm = sum over categories of count x weight, harm per
1,000 usual residents (Census 2021), each category's share of harm, and 95% intervals: exact Poisson /
Byar for counts, the gamma interval with Tiwari's modification for harm (``harm_index.stats``). With a
baseline: harm per month against the baseline's, as a ratio (log-normal interval) and a difference,
flagged significant when the ratio's interval excludes 1. Incidents whose category or offence code has
no weight in the scheme are never weighted 0 silently: they are listed with the reason.

Every result carries its caveats: figures are based on where crimes happened, not where victims live;
the weights' caveat; the population source.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from sqlalchemy import Connection, text

from geo.levels import AreaLevel
from geo.neighbours import queen_neighbours
from geo.versions import StoreVersions, store_versions
from harm_index.categories import UNWEIGHTED_CATEGORIES
from harm_index.periods import Period
from harm_index.population import PARENT_COLUMN, POPULATION_SOURCE, area_rows, residents_by_group
from harm_index.stats import (
    Ratio,
    count_intervals,
    empirical_bayes_global,
    empirical_bayes_spatial,
    harm_gamma_intervals,
    harm_ratio,
    harm_variance,
    rate_per_1000,
)
from harm_index.weights import Scheme
from harmmap.errors import InvalidParameterError

LEVELS = ("force", "local_authority", "ward", "lsoa21", "lsoa11", "h3_7", "h3_8", "h3_9", "h3_10")
SOURCES = {"police_uk_street": "police_uk_category", "force_offences": "ho_offence_code"}
T = TypeVar("T")
NO_POPULATION = {
    "lsoa11": "Census 2021 populations are published for 2021 LSOAs; use lsoa21 for rates",
    "h3": "there is no resident count for H3 cells",
}
LOCATION_CAVEAT = (
    "Figures are based on where crimes happened (police.uk snap points or force locations), not where "
    "victims or residents live."
)


@dataclass
class AreaHarm:
    """One area's figures for the period."""

    code: str
    name: str
    incidents: int
    incidents_interval: tuple[float, float]
    harm: float
    harm_interval: tuple[float, float]
    population: int | None
    harm_rate: float | None
    harm_rate_interval: tuple[float, float] | None
    incident_rate: float | None
    incident_rate_smoothed: float | None
    incident_rate_smoothed_spatial: float | None = None
    by_category: dict[str, int] = field(default_factory=dict)
    harm_share: dict[str, float] = field(default_factory=dict)
    unweighted_incidents: int = 0
    change: Ratio | None = None
    harm_per_month_change: float | None = None
    no_rate_reason: str | None = None


@dataclass
class HarmResult:
    """Scores for every area of one level in a force, with what a reader needs to interpret them."""

    level: str
    force_code: str
    source: str
    period: Period
    baseline: Period | None
    scheme: str
    scheme_version: str
    areas: list[AreaHarm]
    unweighted: dict[str, dict[str, object]]
    caveats: list[str]
    population_source: str | None
    notes: list[str] = field(default_factory=list)


def area_harm(
    conn: Connection,
    *,
    level: str,
    force_code: str,
    period: Period,
    scheme: Scheme,
    source: str = "police_uk_street",
    categories: list[str] | None = None,
    baseline: Period | None = None,
) -> HarmResult:
    """Harm for every area of ``level`` in ``force_code`` over ``period``, optionally against a baseline."""
    if level not in LEVELS:
        raise InvalidParameterError("level", f"{level!r} is not a level", allowed=list(LEVELS))
    if source not in SOURCES:
        raise InvalidParameterError("source", f"{source!r} has no harm", allowed=list(SOURCES))
    key_kind = SOURCES[source]
    weights = scheme.by_kind(key_kind)
    # One read of the reference tables' versions serves every cached lookup below.
    versions = store_versions(conn, *REFERENCE_TABLES)
    counts = _counts(conn, versions, source, force_code, level, period, categories)
    base_counts = _counts(conn, versions, source, force_code, level, baseline, categories) if baseline else {}
    names = _area_index(conn, versions, level, force_code).names
    population, no_rate = _population(conn, versions, level, force_code)
    notes = [
        f"{label} has data in {covered} of its {p.months} months; months without data count as zero"
        for label, p, covered in (
            ("the period", period, _months_with_data(conn, source, force_code, period)),
            ("the comparison period", baseline, _months_with_data(conn, source, force_code, baseline)),
        )
        if p is not None and covered < p.months
    ]

    def result(areas: list[AreaHarm], unweighted: dict[str, dict[str, object]]) -> HarmResult:
        return HarmResult(
            level,
            force_code,
            source,
            period,
            baseline,
            scheme.name,
            scheme.version,
            areas,
            unweighted,
            _caveats(scheme),
            POPULATION_SOURCE if population else None,
            notes,
        )

    if not counts:
        notes.append(f"no incidents are loaded for {force_code} in {period.label}")
        return result([], {})
    mean_weight = float(np.mean(list(weights.values()))) if weights else 0.0
    codes = sorted(set(names) | set(counts)) if not level.startswith("h3") else sorted(counts)
    unweighted: dict[str, dict[str, object]] = {}
    rows: list[AreaHarm] = []
    variances: list[float] = []
    for code in codes:
        by_key = counts.get(code, {})
        weighted = {k: n for k, n in by_key.items() if k in weights}
        for key, n in by_key.items():
            if key not in weights:
                entry = unweighted.setdefault(key, {"incidents": 0, "reason": _why_unweighted(key, key_kind)})
                entry["incidents"] = int(entry["incidents"]) + n  # type: ignore[call-overload]
        harm = float(sum(n * weights[k] for k, n in weighted.items()))
        total = sum(by_key.values())
        pop = population.get(code) if population else None
        rate = rate_per_1000(harm, pop) if pop else None
        row = AreaHarm(
            code=code,
            name=names.get(code, code),
            incidents=total,
            incidents_interval=(0.0, 0.0),  # intervals are filled for all areas at once below
            harm=harm,
            harm_interval=(0.0, 0.0),
            population=pop,
            harm_rate=rate,
            harm_rate_interval=None,
            incident_rate=rate_per_1000(total, pop) if pop else None,
            incident_rate_smoothed=None,
            by_category=dict(sorted(by_key.items())),
            harm_share={k: n * weights[k] / harm for k, n in sorted(weighted.items())} if harm > 0 else {},
            unweighted_incidents=total - sum(weighted.values()),
            no_rate_reason=None if pop else (no_rate or "the population is zero or unknown"),
        )
        if baseline is not None:
            base = {k: n for k, n in base_counts.get(code, {}).items() if k in weights}
            base_harm = sum(n * weights[k] for k, n in base.items())
            row.change = harm_ratio(
                harm,
                harm_variance(list(weighted.values()), [weights[k] for k in weighted]),
                base_harm,
                harm_variance(list(base.values()), [weights[k] for k in base]),
                scale=baseline.months / period.months,
            )
            row.harm_per_month_change = harm / period.months - base_harm / baseline.months
        rows.append(row)
        variances.append(harm_variance(list(weighted.values()), [weights[k] for k in weighted]))
    _intervals(rows, variances, mean_weight)
    _smooth(rows, queen_neighbours(conn, AreaLevel(level), force_code) if level in PARENT_COLUMN else {})
    return result(rows, unweighted)


def _intervals(rows: list[AreaHarm], variances: list[float], mean_weight: float) -> None:
    """Count and harm intervals for every area in two vectorised passes (Tiwari-modified gamma)."""
    if not rows:
        return
    low, high = count_intervals([r.incidents for r in rows])
    h_low, h_high = harm_gamma_intervals([r.harm for r in rows], variances, [mean_weight or 1.0] * len(rows))
    for row, lo, hi, hlo, hhi in zip(rows, low, high, h_low, h_high, strict=True):
        row.incidents_interval = (float(lo), float(hi))
        row.harm_interval = (float(hlo), float(hhi))
        if row.population:
            row.harm_rate_interval = (1000 * float(hlo) / row.population, 1000 * float(hhi) / row.population)


def _smooth(rows: list[AreaHarm], neighbours: dict[str, list[str]]) -> None:
    """Global and spatial empirical Bayes incident rates (Marshall 1991) for areas with a population."""
    with_pop = [r for r in rows if r.population]
    if len(with_pop) < 2:
        return
    events = [r.incidents for r in with_pop]
    base = [r.population or 0 for r in with_pop]
    position = {r.code: i for i, r in enumerate(with_pop)}
    hoods = [[position[n] for n in neighbours.get(r.code, []) if n in position] for r in with_pop]
    smoothed = empirical_bayes_global(events, base)
    spatial = empirical_bayes_spatial(events, base, hoods) if neighbours else [None] * len(with_pop)
    for row, value, local in zip(with_pop, smoothed, spatial, strict=True):
        row.incident_rate_smoothed = 1000 * float(value)
        row.incident_rate_smoothed_spatial = None if local is None else 1000 * float(local)


def _why_unweighted(key: str, key_kind: str) -> str:
    if key in UNWEIGHTED_CATEGORIES:
        return "anti-social behaviour is not a notifiable offence: counted, excluded from harm by design"
    if key.endswith("(2011 category)"):
        return "a 2011 police.uk category with no one-to-one current category, so no category weight"
    return f"this {key_kind.replace('_', ' ')} has no weight in the scheme"


def _caveats(scheme: Scheme) -> list[str]:
    return [LOCATION_CAVEAT, scheme.caveat]


def _counts(
    conn: Connection,
    versions: StoreVersions,
    source: str,
    force_code: str,
    level: str,
    period: Period | None,
    categories: list[str] | None,
) -> dict[str, dict[str, int]]:
    if period is None:
        return {}
    h3 = level.startswith("h3")
    # H3 cells are kept at month span only (harm_counts' CHECK): a year of hexes is its twelve months.
    spans = period.spans(longest=1 if h3 else 12)
    # Census geographies read the totals over folded batches; H3 cells (not kept there) sum the folded
    # batches' counts. Either way each recent batch adds its own partition's rows. Each arm joins the
    # spans itself: through a UNION ALL view the planner scanned the whole force's rows of every period.
    # The level bounds are literal so the planner can use harm_counts' partial index (H3 ids are 7-10).
    arms = (
        [("harm_counts", "AND h.level >= 7"), ("harm_recent", "AND h.level >= 7")]
        if h3
        else [
            ("harm_totals", ""),
            ("harm_recent", "AND h.level <= 5"),
        ]
    )
    union = "\n            UNION ALL\n".join(
        # table and bound are the fixed strings above
        f"""
            SELECT h.area, h.key_id, h.incidents
            FROM {table} h JOIN p ON h.span = p.span AND h.period_start = p.start
            WHERE h.source = (SELECT id FROM harm_sources WHERE name = :source)
              AND h.force_code = :force
              AND h.level = (SELECT id FROM harm_levels WHERE name = :level) {bound}"""
        for table, bound in arms
    )
    # Integer keys only: area ids and key ids are named from per-version caches, not joined per query.
    rows = conn.execute(
        text(
            f"""
            WITH p AS (
                SELECT * FROM unnest(CAST(:spans AS smallint[]), CAST(:starts AS date[])) AS p (span, start)
            )
            SELECT area, key_id, sum(incidents) AS n
            FROM ({union}) counted
            GROUP BY area, key_id
            """
        ),
        {
            "source": source,
            "force": force_code,
            "level": level,
            "spans": [span for span, _ in spans],
            "starts": [start for _, start in spans],
        },
    ).all()
    keys = _key_names(conn, versions)
    codes = {} if h3 else _area_index(conn, versions, level, force_code).codes
    wanted = set(categories) if categories else None
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for area, key_id, n in rows:
        key = keys[key_id]
        if wanted is not None and key not in wanted:
            continue
        code = format(area, "x") if h3 else codes.get(area)
        if code is None:
            continue  # an area no longer in the boundaries: its records need reloading
        out[code][key] = int(n)
    return out


_REFERENCE_CACHE: dict[tuple[object, ...], object] = {}
# The reference tables harm scores read; their versions key the cached lookups.
REFERENCE_TABLES = ("areas", "census2021_ethnicity", "harm_keys")


def _cached(
    versions: StoreVersions, tables: tuple[str, ...], key: tuple[object, ...], build: Callable[[], T]
) -> T:
    """``build()``'s answer, kept until one of ``tables`` changes (see geo.versions)."""
    full = (versions.of(*tables), *key)
    if full not in _REFERENCE_CACHE:
        if len(_REFERENCE_CACHE) > 256:
            _REFERENCE_CACHE.clear()
        _REFERENCE_CACHE[full] = build()
    return _REFERENCE_CACHE[full]  # type: ignore[return-value]


def _key_names(conn: Connection, versions: StoreVersions) -> dict[int, str]:
    names: dict[int, str] = _cached(
        versions,
        ("harm_keys",),
        ("keys",),
        lambda: dict(conn.execute(text("SELECT id, key FROM harm_keys")).all()),
    )
    return names


@dataclass(frozen=True)
class _AreaIndex:
    codes: dict[int, str]  # area id -> code, as harm_totals stores areas
    names: dict[str, str]  # code -> name


def _area_index(conn: Connection, versions: StoreVersions, level: str, force_code: str) -> _AreaIndex:
    def build() -> _AreaIndex:
        if level.startswith("h3"):
            return _AreaIndex({}, {})
        rows = area_rows(conn, level, force_code)
        return _AreaIndex({i: code for i, code, _ in rows}, {code: name for _, code, name in rows})

    index: _AreaIndex = _cached(versions, ("areas",), ("areas", level, force_code), build)
    return index


def _months_with_data(conn: Connection, source: str, force_code: str, period: Period | None) -> int:
    if period is None:
        return 0
    return int(
        conn.execute(
            text(
                "SELECT count(DISTINCT period_start) FROM harm_census_counts "
                "WHERE source = (SELECT id FROM harm_sources WHERE name = :source) AND force_code = :force "
                "AND level = 1 AND span = 1 AND period_start >= :start AND period_start < :end"
            ),
            {"source": source, "force": force_code, "start": period.start, "end": period.end_exclusive},
        ).scalar_one()
    )


def _population(
    conn: Connection, versions: StoreVersions, level: str, force_code: str
) -> tuple[dict[str, int], str | None]:
    def build() -> tuple[dict[str, int], str | None]:
        if level not in PARENT_COLUMN:
            return {}, NO_POPULATION["h3" if level.startswith("h3") else level]
        residents = residents_by_group(conn, level, force_code)
        if not residents:
            return {}, "no Census 2021 population is loaded (harmmap ingest census)"
        return {code: sum(groups.values()) for code, groups in residents.items()}, None

    found: tuple[dict[str, int], str | None] = _cached(
        versions, ("areas", "census2021_ethnicity"), ("population", level, force_code), build
    )
    return found
