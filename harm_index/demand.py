"""Calls-for-service demand per 1,000 residents by closing-code group, with and without persistent callers.

A caller reference is **persistent** when it made at least ``min_calls`` calls within any window of
``window_days`` days (default: 10 in 30, configurable). A few such callers can make hundreds of calls and
swamp an area's demand, so every figure is given twice: all calls, and calls from everyone else. Calls
without a caller reference can never be flagged. Calls are placed where the incident was, not where the
caller lives. Synthetic calls (generated because no public call data exists) are marked synthetic in
every figure built on them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, text

from harm_index.disclosure import Disclosure
from harm_index.periods import Period
from harm_index.population import POPULATION_SOURCE, area_names, parent_column, residents_by_group
from harm_index.stats import count_interval
from harmmap.errors import InvalidParameterError
from ingest.calls import CLOSING_CODE_GROUPS

LEVELS = ("force", "local_authority", "ward", "lsoa21")
DEMAND_GROUPS = tuple(sorted(set(CLOSING_CODE_GROUPS.values())))


@dataclass(frozen=True)
class PersistentRule:
    """At least ``min_calls`` calls from one caller reference within ``window_days`` days."""

    min_calls: int = 10
    window_days: int = 30

    def describe(self) -> str:
        """The rule in words, for every output that uses it."""
        return f">= {self.min_calls} calls from one caller reference within {self.window_days} days"


@dataclass
class DemandResult:
    """Demand per area and group, all calls and without persistent callers."""

    level: str
    force_code: str
    period: Period
    rule: str
    synthetic: bool
    areas: list[dict[str, Any]] = field(default_factory=list)
    persistent_callers: int = 0
    persistent_calls: int = 0
    calls: int = 0
    caveats: list[str] = field(default_factory=list)
    method: dict[str, Any] = field(default_factory=dict)


def persistent_callers(
    conn: Connection, force_code: str, period: Period, rule: PersistentRule
) -> dict[str, int]:
    """Persistent caller references in the period and the number of calls each made in it."""
    rows = conn.execute(
        text(
            """
            WITH windowed AS (
                SELECT caller_ref,
                       count(*) OVER (PARTITION BY caller_ref ORDER BY received_at
                                      RANGE BETWEEN CAST(:window AS interval) PRECEDING
                                      AND CURRENT ROW) AS in_window
                FROM calls
                WHERE force_code = :force AND month >= :start AND month < :end AND caller_ref IS NOT NULL
            )
            SELECT caller_ref, count(*) AS calls FROM windowed GROUP BY caller_ref
            HAVING max(in_window) >= :min_calls
            """
        ),
        {
            "force": force_code,
            "start": period.start,
            "end": period.end_exclusive,
            "window": f"{rule.window_days} days",
            "min_calls": rule.min_calls,
        },
    ).all()
    return {ref: int(n) for ref, n in rows}


def call_demand(
    conn: Connection,
    *,
    level: str,
    force_code: str,
    period: Period,
    rule: PersistentRule | None = None,
    disclosure: Disclosure | None = None,
) -> DemandResult:
    """Calls per 1,000 residents by closing-code group, with and without persistent callers."""
    if level not in LEVELS:
        raise InvalidParameterError("level", f"{level!r} is not a level for calls", allowed=list(LEVELS))
    rule = rule or PersistentRule()
    disclosure = disclosure or Disclosure()
    column = parent_column(level)
    persistent = persistent_callers(conn, force_code, period, rule)
    area_column = "lsoa21_code" if column == "code" else column
    rows = conn.execute(
        text(
            # area_column comes from PARENT_COLUMN, a fixed list; the code groups are bound arrays
            f"""
            SELECT c.{area_column} AS code, g.demand_group, c.caller_ref = ANY(CAST(:persistent AS text[])),
                   bool_or(c.synthetic), count(*)
            FROM calls c
            JOIN unnest(CAST(:codes AS text[]), CAST(:groups AS text[])) AS g (closing_code, demand_group)
              ON g.closing_code = c.closing_code
            WHERE c.force_code = :force AND c.month >= :start AND c.month < :end
            GROUP BY 1, 2, 3
            """
        ),
        {
            "persistent": sorted(persistent),
            "codes": list(CLOSING_CODE_GROUPS),
            "groups": list(CLOSING_CODE_GROUPS.values()),
            "force": force_code,
            "start": period.start,
            "end": period.end_exclusive,
        },
    ).all()
    counts: dict[str, dict[str, list[int]]] = defaultdict(lambda: {g: [0, 0] for g in DEMAND_GROUPS})
    synthetic = False
    for code, group, from_persistent, any_synthetic, n in rows:
        counts[code][group][1 if from_persistent else 0] += int(n)
        synthetic = synthetic or bool(any_synthetic)
    population = residents_by_group(conn, level, force_code)
    names = area_names(conn, level, force_code)
    result = DemandResult(
        level=level,
        force_code=force_code,
        period=period,
        rule=rule.describe(),
        synthetic=synthetic,
        persistent_callers=len(persistent),
        persistent_calls=sum(persistent.values()),
        calls=sum(sum(a + b for a, b in groups.values()) for groups in counts.values()),
        caveats=[
            "Calls are placed where the incident was reported to be, not where the caller lives.",
            f"Persistent callers ({rule.describe()}) can swamp an area's demand: figures are given with "
            "and without them.",
            *(
                [
                    "SYNTHETIC: these calls were generated by harmmap (no public call data exists); they are "
                    "not real and describe no real place or person."
                ]
                if synthetic
                else []
            ),
        ],
        method={
            "rate": "1000 x calls / Census 2021 usual residents",
            "groups": "closing-code groups (docs/input-schemas.md)",
            "persistent_rule": rule.describe(),
            "population_source": POPULATION_SOURCE,
            "disclosure": disclosure.describe(),
        },
    )
    for code in sorted(set(names) | set(counts)):
        residents = sum(population.get(code, {}).values())
        groups = counts.get(code, {g: [0, 0] for g in DEMAND_GROUPS})
        rows_out = []
        for group in (*DEMAND_GROUPS, "all"):
            others, from_persistent = (
                [sum(v[0] for v in groups.values()), sum(v[1] for v in groups.values())]
                if group == "all"
                else groups[group]
            )
            row = {
                "group": group,
                "calls": others + from_persistent,
                "calls_without_persistent": others,
                "from_persistent_callers": from_persistent,
                **_rates("rate", others + from_persistent, residents),
                **_rates("rate_without_persistent", others, residents),
            }
            rows_out.append(row)
        disclosure.apply(
            rows_out,
            {
                "calls": ["rate", "rate_interval"],
                "calls_without_persistent": ["rate_without_persistent", "rate_without_persistent_interval"],
                "from_persistent_callers": [],
            },
        )
        result.areas.append(
            {
                "code": code,
                "name": names.get(code),
                "residents": residents,
                "synthetic": synthetic,
                "groups": rows_out,
            }
        )
    return result


def _rates(name: str, n: int, residents: int) -> dict[str, Any]:
    if residents <= 0:
        return {name: None, f"{name}_interval": None}
    low, high = count_interval(n)
    return {name: 1000 * n / residents, f"{name}_interval": [1000 * low / residents, 1000 * high / residents]}
