"""Stop-and-search disproportionality: rates per 1,000 residents by ethnic group and ratios against White.

Method (Home Office; see METHODS.md):

* searches of people by **self-defined** ethnicity mapped to the five broad Census 2021 groups (officer-
  defined ethnicity on request), divided by the group's Census 2021 usual residents in the same areas;
* rate per 1,000 = 1000 S_g / P_g with an exact Poisson (below 10) or Byar interval on S_g;
* ratio against White = rate_g / rate_White with the Katz log interval exp(ln RR +/- z sqrt(1/S_g + 1/S_W));
* later stages (Relative Rate Index): the outcome rate among those searched, O_g / S_g, against White's,
  with the same interval; the base is the previous stage (searches), not population;
* vehicle-only searches searched no person and have no ethnicity: counted and reported apart;
* "not stated" searches cannot be placed in a group: counted, and the ratio is recomputed with all of
  them given to the group and, separately, all to White, so the reader sees how far they could move it.

Ratios are undefined (with the reason) when a group or White has no residents or no searches.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, text

from harm_index.disclosure import Disclosure
from harm_index.periods import Period
from harm_index.population import (
    BROAD_GROUPS,
    COMPARISON_GROUP,
    POPULATION_SOURCE,
    area_names,
    parent_column,
    residents_by_group,
)
from harm_index.stats import count_interval, rate_ratio_katz
from harmmap.errors import InvalidParameterError

NOT_STATED = "Not stated"
VEHICLE_ONLY = "Vehicle search"
ETHNICITY_BASES = {
    "self": "s.self_defined_group",
    # police.uk publishes the officer's view in five groups of its own; blank is "not stated".
    "officer": (
        "CASE WHEN s.officer_defined_ethnicity IN ('Asian', 'Black', 'Mixed', 'Other', 'White') "
        "THEN s.officer_defined_ethnicity ELSE 'Not stated' END"
    ),
}
LEGISLATION_GROUPS = ("s1 PACE", "s23 Misuse of Drugs Act", "s60 CJPOA", "other", "Not stated")
LEVELS = ("force", "local_authority", "ward")
CAVEATS = [
    "Searches are placed where the search happened; residents are counted where they live (Census 2021). "
    "People searched away from home inflate the rate of the area searched.",
    "Ratios are distorted by geographic clustering, population change since the 2021 Census, and "
    "unreported ethnicity (Race Disparity Unit); small areas give unstable ratios: read the intervals.",
    "A ratio describes how police powers fall on groups, not the people of any group or area.",
    "Searches police.uk publishes without a location cannot be placed in an area and are not in these "
    "figures; the data-quality report counts them.",
]


@dataclass
class DisparityResult:
    """Rates and ratios per area and group, with the method that made them."""

    level: str
    force_code: str
    period: Period
    basis: str
    legislation: list[str] | None
    rates: list[dict[str, Any]] = field(default_factory=list)
    by_legislation: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    unassigned: list[dict[str, Any]] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)
    method: dict[str, Any] = field(default_factory=dict)


def stop_search_disparity(
    conn: Connection,
    *,
    level: str,
    force_code: str,
    period: Period,
    basis: str = "self",
    legislation: list[str] | None = None,
    disclosure: Disclosure | None = None,
) -> DisparityResult:
    """Searches per 1,000 residents by group, ratios against White, by legislation and by outcome."""
    if level not in LEVELS:
        raise InvalidParameterError("level", f"{level!r} is not a level for this layer", allowed=list(LEVELS))
    if basis not in ETHNICITY_BASES:
        raise InvalidParameterError("ethnicity", f"{basis!r} is not a basis", allowed=list(ETHNICITY_BASES))
    for item in legislation or []:
        if item not in LEGISLATION_GROUPS:
            raise InvalidParameterError(
                "legislation", f"{item!r} is not a legislation group", allowed=list(LEGISLATION_GROUPS)
            )
    disclosure = disclosure or Disclosure()
    column = parent_column(level)
    # column and the ethnicity expression come from fixed lists above; every value is bound.
    rows = conn.execute(
        text(
            f"""
            SELECT s.{column} AS code,
                   {ETHNICITY_BASES[basis]} AS grp, s.legislation_group, coalesce(s.outcome, '') AS outcome,
                   s.search_type = :vehicle AS vehicle_only, count(*) AS n
            FROM stop_searches s
            WHERE s.force_code = :force AND s.month >= :start AND s.month < :end
              AND (CAST(:legislation AS text[]) IS NULL
                   OR s.legislation_group = ANY(CAST(:legislation AS text[])))
            GROUP BY 1, 2, 3, 4, 5
            """
        ),
        {
            "vehicle": VEHICLE_ONLY,
            "force": force_code,
            "start": period.start,
            "end": period.end_exclusive,
            "legislation": legislation,
        },
    ).all()
    population = residents_by_group(conn, level, force_code)
    names = area_names(conn, level, force_code)

    searches: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    by_law: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    by_outcome: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    vehicle: dict[str, int] = defaultdict(int)
    for code, group, law, outcome, vehicle_only, n in rows:
        if vehicle_only:
            vehicle[code] += n
            continue
        searches[code][group] += n
        by_law[(code, law)][group] += n
        by_outcome[(code, outcome or "not recorded")][group] += n

    result = DisparityResult(
        level=level,
        force_code=force_code,
        period=period,
        basis=basis,
        legislation=legislation,
        caveats=list(CAVEATS),
        method={
            "rate": "1000 x searches / Census 2021 residents of the group",
            "rate_interval": "exact Poisson below 10 searches, Byar from 10 (95%)",
            "ratio": f"rate of the group / rate of {COMPARISON_GROUP}; Katz log interval (95%)",
            "outcome_ratio": "Relative Rate Index: outcome rate among those searched, against White's",
            "ethnicity": f"{basis}-defined ethnicity, five broad Census 2021 groups",
            "population_source": POPULATION_SOURCE,
            "disclosure": disclosure.describe(),
        },
    )
    for code in sorted(set(names) | set(searches)):
        pop = population.get(code, dict.fromkeys(BROAD_GROUPS, 0))
        counts = searches.get(code, {})
        result.rates.extend(group_rate_rows(code, names.get(code), counts, pop, disclosure))
        not_stated = counts.get(NOT_STATED, 0)
        result.unassigned.append(
            _unassigned_row(code, names.get(code), counts, pop, not_stated, vehicle.get(code, 0), disclosure)
        )
    for (code, law), counts in sorted(by_law.items()):
        pop = population.get(code, dict.fromkeys(BROAD_GROUPS, 0))
        for row in group_rate_rows(code, names.get(code), counts, pop, disclosure):
            result.by_legislation.append({"legislation": law, **row})
    for (code, outcome), counts in sorted(by_outcome.items()):
        result.outcomes.extend(
            {"outcome": outcome, **row}
            for row in _stage_rows(code, names.get(code), counts, searches.get(code, {}), disclosure)
        )
    return result


def group_rate_rows(
    code: str,
    name: str | None,
    counts: dict[str, int],
    population: dict[str, int],
    disclosure: Disclosure,
    count_field: str = "searches",
) -> list[dict[str, Any]]:
    """Rate per 1,000 residents for each broad group, and each group's ratio against White."""
    white_n, white_pop = counts.get(COMPARISON_GROUP, 0), population.get(COMPARISON_GROUP, 0)
    rows = []
    for group in BROAD_GROUPS:
        n, pop = counts.get(group, 0), population.get(group, 0)
        row: dict[str, Any] = {"code": code, "name": name, "group": group, count_field: n, "residents": pop}
        if pop > 0:
            low, high = count_interval(n)
            row |= {"rate": 1000 * n / pop, "rate_interval": [1000 * low / pop, 1000 * high / pop]}
        else:
            row |= {"rate": None, "rate_interval": None, "rate_reason": "no Census residents in this group"}
        if group != COMPARISON_GROUP:
            row |= _ratio_fields(n, pop, white_n, white_pop, "residents")
            if disclosure.is_disclosive(white_n):
                _withhold_ratio(row, "the White comparison count is withheld by disclosure control")
        rows.append(row)
    return disclosure.apply(rows, {count_field: ["rate", "rate_interval", "ratio", "ratio_interval"]})


def _stage_rows(
    code: str,
    name: str | None,
    outcome_counts: dict[str, int],
    searched: dict[str, int],
    disclosure: Disclosure,
) -> list[dict[str, Any]]:
    white_n, white_base = outcome_counts.get(COMPARISON_GROUP, 0), searched.get(COMPARISON_GROUP, 0)
    rows = []
    for group in BROAD_GROUPS:
        n, base = outcome_counts.get(group, 0), searched.get(group, 0)
        row: dict[str, Any] = {
            "code": code,
            "name": name,
            "group": group,
            "with_outcome": n,
            "searched": base,
            "outcome_rate": n / base if base else None,
        }
        if group != COMPARISON_GROUP:
            row |= _ratio_fields(n, base, white_n, white_base, "searches")
            if disclosure.is_disclosive(white_n) or disclosure.is_disclosive(white_base):
                _withhold_ratio(row, "a White comparison count is withheld by disclosure control")
        rows.append(row)
    return disclosure.apply(
        rows,
        {
            "with_outcome": ["outcome_rate", "ratio", "ratio_interval"],
            "searched": ["outcome_rate", "ratio", "ratio_interval"],
        },
    )


def _ratio_fields(n: int, base: int, white_n: int, white_base: int, base_name: str) -> dict[str, Any]:
    reason = None
    if base == 0:
        reason = f"the group has no {base_name} here, so it has no rate"
    elif white_base == 0:
        reason = f"White has no {base_name} here, so there is no comparison rate"
    elif white_n == 0:
        reason = "no White searches (or outcomes) here: the comparison rate is 0 and the ratio is undefined"
    elif n == 0:
        reason = "no searches (or outcomes) of the group here: the ratio is 0 and its log interval undefined"
    if reason:
        return {
            "ratio": 0.0 if n == 0 and base and white_n else None,
            "ratio_interval": None,
            "significant": False,
            "ratio_reason": reason,
        }
    ratio = rate_ratio_katz(n, base, white_n, white_base)
    return {
        "ratio": ratio.ratio,
        "ratio_interval": [ratio.lower, ratio.upper],
        "significant": ratio.significant,
        "ratio_reason": None,
    }


def _withhold_ratio(row: dict[str, Any], reason: str) -> None:
    row["ratio"], row["ratio_interval"], row["significant"] = None, None, None
    row.setdefault("withheld", {})["ratio"] = reason
    row["withheld"]["ratio_interval"] = reason


def _unassigned_row(
    code: str,
    name: str | None,
    counts: dict[str, int],
    population: dict[str, int],
    not_stated: int,
    vehicle_only: int,
    disclosure: Disclosure,
) -> dict[str, Any]:
    """How far the not-stated searches could move the Black/White ratio, and the vehicle-only count."""
    people = sum(counts.values())
    black, white = counts.get("Black", 0), counts.get(COMPARISON_GROUP, 0)
    pop_b, pop_w = population.get("Black", 0), population.get(COMPARISON_GROUP, 0)

    def ratio(b: int, w: int) -> float | None:
        return (b / pop_b) / (w / pop_w) if b and w and pop_b and pop_w else None

    row: dict[str, Any] = {
        "code": code,
        "name": name,
        "person_searches": people,
        "not_stated": not_stated,
        "not_stated_share": not_stated / people if people else None,
        "vehicle_only": vehicle_only,
        "black_white_ratio": ratio(black, white),
        "black_white_ratio_if_not_stated_all_black": ratio(black + not_stated, white),
        "black_white_ratio_if_not_stated_all_white": ratio(black, white + not_stated),
        "effect": (
            "not-stated searches are left out of every group's rate; were they all Black the ratio would be "
            "the first bound, all White the second"
        ),
    }
    derived = [
        "black_white_ratio",
        "black_white_ratio_if_not_stated_all_black",
        "black_white_ratio_if_not_stated_all_white",
    ]
    row["black"], row["white"] = black, white
    out = disclosure.apply(
        [row],
        {
            "not_stated": ["not_stated_share", *derived[1:]],
            "black": derived,
            "white": derived,
            "vehicle_only": [],
            "person_searches": ["not_stated_share"],
        },
    )[0]
    return out
