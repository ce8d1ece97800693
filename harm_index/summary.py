"""One area's monthly harm series by category, against its baseline.

For each month of the period: incidents by category, harm with its gamma interval, and the ratio of the
month's harm to the baseline's mean monthly harm (log-normal interval, significance flag). Months with no
records are zeros, and the series says how many months of the period hold data for the force at all.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, text

from harm_index.disclosure import Disclosure
from harm_index.periods import Period, add_months
from harm_index.scores import LOCATION_CAVEAT
from harm_index.stats import count_interval, harm_interval, harm_ratio, harm_variance
from harm_index.weights import Scheme
from harmmap.errors import InvalidParameterError, NotFoundError

LEVELS = ("force", "local_authority", "ward", "lsoa21", "lsoa11")


@dataclass
class AreaSummary:
    """The series and what it was measured against."""

    code: str
    name: str
    level: str
    force_code: str
    period: Period
    baseline: Period
    scheme: str
    scheme_version: str
    baseline_monthly_harm: float
    months: list[dict[str, Any]] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)


def area_summary(
    conn: Connection,
    *,
    level: str,
    code: str,
    period: Period,
    baseline: Period,
    scheme: Scheme,
    source: str = "police_uk_street",
    disclosure: Disclosure | None = None,
    force_code: str | None = None,
) -> AreaSummary:
    """The area's month-by-month harm and counts by category over ``period``, against ``baseline``.

    ``force_code``, when given, is a filter as everywhere else: an area of another force is not found.
    (The disclosure rule a caller chose for that force must never reach another force's figures.)
    """
    if level not in LEVELS:
        raise InvalidParameterError("level", f"{level!r} is not a census level", allowed=list(LEVELS))
    disclosure = disclosure or Disclosure()
    area = conn.execute(
        text(
            "SELECT id, name, CASE WHEN level = 'force' THEN code ELSE force_code END AS force_code "
            "FROM areas WHERE level = CAST(:level AS area_level) AND code = :code ORDER BY id DESC LIMIT 1"
        ),
        {"level": level, "code": code},
    ).one_or_none()
    if area is None:
        raise NotFoundError(f"no {level} has code {code}", parameter="code")
    if force_code is not None and area.force_code != force_code:
        raise NotFoundError(f"{level} {code} is not in force {force_code}", parameter="code")
    weights = scheme.by_kind("police_uk_category" if source == "police_uk_street" else "ho_offence_code")
    first = min(period.start, baseline.start)
    last = max(period.end_exclusive, baseline.end_exclusive)
    rows = conn.execute(
        text(
            """
            SELECT t.period_start, k.key, sum(t.incidents)
            FROM harm_census_counts t JOIN harm_keys k ON k.id = t.key_id
            WHERE t.source = (SELECT id FROM harm_sources WHERE name = :source) AND t.force_code = :force
              AND t.level = (SELECT id FROM harm_levels WHERE name = :level) AND t.span = 1
              AND t.area = :area AND t.period_start >= :first AND t.period_start < :last
            GROUP BY 1, 2
            """
        ),
        {
            "source": source,
            "force": area.force_code,
            "level": level,
            "area": area.id,
            "first": first,
            "last": last,
        },
    ).all()
    by_month: dict[Any, dict[str, int]] = defaultdict(dict)
    for month, key, n in rows:
        by_month[month][key] = int(n)

    def harm_of(counts: dict[str, int]) -> tuple[float, float]:
        weighted = {k: n for k, n in counts.items() if k in weights}
        harm = sum(n * weights[k] for k, n in weighted.items())
        return harm, harm_variance(list(weighted.values()), [weights[k] for k in weighted])

    base_counts: dict[str, int] = defaultdict(int)
    month = baseline.start
    while month < baseline.end_exclusive:
        for key, n in by_month.get(month, {}).items():
            base_counts[key] += n
        month = add_months(month, 1)
    base_harm, base_var = harm_of(base_counts)
    summary = AreaSummary(
        code=code,
        name=area.name,
        level=level,
        force_code=area.force_code,
        period=period,
        baseline=baseline,
        scheme=scheme.name,
        scheme_version=scheme.version,
        baseline_monthly_harm=base_harm / baseline.months,
        caveats=[LOCATION_CAVEAT, scheme.caveat],
    )
    month = period.start
    while month < period.end_exclusive:
        counts = by_month.get(month, {})
        harm, variance = harm_of(counts)
        weighted = {k: n for k, n in counts.items() if k in weights}
        total = sum(counts.values())
        ratio = harm_ratio(harm, variance, base_harm, base_var, scale=baseline.months)
        row: dict[str, Any] = {
            "month": f"{month:%Y-%m}",
            "incidents": total,
            "incidents_interval": list(count_interval(total)),
            "by_category": dict(sorted(counts.items())),
            "harm": harm,
            "harm_interval": list(harm_interval(list(weighted.values()), [weights[k] for k in weighted]))
            if weighted
            else [0.0, 0.0],
            "ratio_to_baseline": ratio.ratio,
            "ratio_interval": [ratio.lower, ratio.upper] if ratio.ratio is not None else None,
            "significant": ratio.significant,
        }
        disclosure.apply(
            [row],
            {
                "incidents": [
                    "incidents_interval",
                    "harm",
                    "harm_interval",
                    "ratio_to_baseline",
                    "ratio_interval",
                    "significant",
                ]
            },
        )
        row["by_category"] = {
            k: (None if disclosure.is_disclosive(n) else n) for k, n in row["by_category"].items()
        }
        summary.months.append(row)
        month = add_months(month, 1)
    return summary
