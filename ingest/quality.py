"""``harmmap quality``: the workshops' "data validation exercise", one RAG-rated line per source and check.

Thresholds (Green / Amber; anything worse is Red):

| check | Green | Amber |
|---|---|---|
| months covered of the baseline (Apr 2018 - Mar 2023, 60 months) | >= 95% | >= 80% |
| rows rejected | < 1% | < 5% |
| location missing or unusable (rejected) plus located only by LSOA code | <= 2% | <= 10% |
| police.uk LSOA differs from point-in-polygon | <= 5% | <= 10% |
| ethnicity not stated / not recorded | <= 10% | <= 25% |
| duplicate IDs rejected | 0 | <= 0.5% |

A source with no rows for the force is Red on coverage and says so. Synthetic sources are marked.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, text

BASELINE_START = dt.date(2018, 4, 1)
BASELINE_MONTHS = 60

# source -> (table, ethnicity checks as (label, SQL condition that means "not stated")). From code only.
SOURCES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "police_uk_street": ("crimes", []),
    "police_uk_stop_search": (
        "stop_searches",
        [
            ("self-defined ethnicity not stated", "self_defined_group = 'Not stated'"),
            ("officer-defined ethnicity missing", "officer_defined_ethnicity IS NULL"),
        ],
    ),
    "force_offences": ("offences", [("victim ethnicity not stated", "victim_group = 'Not stated'")]),
    "calls_for_service": ("calls", [("caller ethnicity not recorded", "caller_group = 'Not stated'")]),
}
LOCATION_KINDS = ("no_location", "bad_coordinates", "zero_coordinates", "out_of_range")


@dataclass(frozen=True)
class QualityLine:
    """One check of one source for one force."""

    force_code: str
    source: str
    check: str
    value: float | None
    detail: str
    rating: str
    thresholds: str


def rate(value: float, green: float, amber: float, higher_is_better: bool = False) -> str:
    """Red/Amber/Green for ``value`` against the two thresholds."""
    if higher_is_better:
        return "Green" if value >= green else "Amber" if value >= amber else "Red"
    return "Green" if value <= green else "Amber" if value <= amber else "Red"


def quality_report(conn: Connection, force_code: str) -> list[QualityLine]:
    """Every check for every source, for one force."""
    lines: list[QualityLine] = []
    for source, (table, ethnicity) in SOURCES.items():
        lines += _source_lines(conn, force_code, source, table, ethnicity)
    return lines


def _source_lines(
    conn: Connection, force: str, source: str, table: str, ethnicity: list[tuple[str, str]]
) -> list[QualityLine]:
    def line(check: str, value: float | None, detail: str, rating: str, thresholds: str) -> QualityLine:
        return QualityLine(force, source, check, value, detail, rating, thresholds)

    # A record placed by its LSOA code has no point (ingest.locate), in every record table.
    stats = conn.execute(
        text(
            f"""
            SELECT count(*) AS rows,
                   count(DISTINCT month) FILTER (WHERE month >= :start AND month < :end) AS baseline_months,
                   min(month) AS first, max(month) AS last,
                   count(*) FILTER (WHERE lon IS NULL) AS by_code,
                   bool_or(synthetic) AS synthetic,
                   array_agg(DISTINCT batch_id) AS batches
            FROM {table} WHERE force_code = :force
            """
        ),
        {"force": force, "start": BASELINE_START, "end": _add_months(BASELINE_START, BASELINE_MONTHS)},
    ).one()
    name = source + (" (SYNTHETIC)" if stats.synthetic else "")
    if not stats.rows:
        return [
            QualityLine(
                force,
                name,
                "months covered of the baseline",
                0.0,
                "no rows loaded for this force",
                "Red",
                ">= 95% Green, >= 80% Amber",
            )
        ]
    batches = [b for b in stats.batches if b is not None]
    totals = conn.execute(
        text(
            "SELECT sum(data_rows) AS rows, sum(rejected) AS rejected FROM ingest_batches WHERE id = ANY(:b)"
        ),
        {"b": batches},
    ).one()
    kinds: dict[str, int] = dict(
        conn.execute(
            text("SELECT kind, count(*) FROM ingest_rejects WHERE batch_id = ANY(:b) GROUP BY kind"),
            {"b": batches},
        ).all()
    )
    data_rows = int(totals.rows or 0) or 1
    coverage = stats.baseline_months / BASELINE_MONTHS
    rejected = int(totals.rejected or 0) / data_rows
    located_badly = (sum(kinds.get(k, 0) for k in LOCATION_KINDS) + stats.by_code) / data_rows
    duplicates = kinds.get("duplicate_id", 0) / data_rows
    why = ", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])) or "none"
    out = [
        line(
            "months covered of the baseline",
            coverage,
            f"{stats.baseline_months} of {BASELINE_MONTHS} months (Apr 2018 - Mar 2023); data spans "
            f"{stats.first:%b %Y} - {stats.last:%b %Y}",
            rate(coverage, 0.95, 0.80, higher_is_better=True),
            ">= 95% Green, >= 80% Amber",
        ),
        line(
            "rows rejected",
            rejected,
            f"{int(totals.rejected or 0):,} of {data_rows:,}; why: {why}",
            rate(rejected, 0.0099999, 0.0499999),
            "< 1% Green, < 5% Amber",
        ),
        line(
            "missing or imprecise locations",
            located_badly,
            f"{sum(kinds.get(k, 0) for k in LOCATION_KINDS):,} rejected for location, "
            f"{stats.by_code:,} placed by LSOA code only",
            rate(located_badly, 0.02, 0.10),
            "<= 2% Green, <= 10% Amber",
        ),
        line(
            "duplicate IDs",
            duplicates,
            f"{kinds.get('duplicate_id', 0):,} rejected as duplicates",
            rate(duplicates, 0.0, 0.005),
            "0 Green, <= 0.5% Amber",
        ),
    ]
    if table == "crimes":
        compared = conn.execute(
            text(
                # crime_records.lsoa_disagrees, on crimes itself: the view's label joins cost a scan.
                "SELECT count(d) AS n, count(*) FILTER (WHERE d) AS differ "
                "FROM (SELECT crime_lsoa_disagrees(lon, lsoa11_reported, lsoa11_code) AS d "
                "FROM crimes WHERE force_code = :force) c"
            ),
            {"force": force},
        ).one()
        share = compared.differ / compared.n if compared.n else 0.0
        out.append(
            line(
                "police.uk LSOA differs from point-in-polygon",
                share,
                f"{compared.differ:,} of {compared.n:,} compared",
                rate(share, 0.05, 0.10),
                "<= 5% Green, <= 10% Amber",
            )
        )
    for label, condition in ethnicity:
        missing = conn.execute(
            text(f"SELECT avg(({condition})::int) FROM {table} WHERE force_code = :force"), {"force": force}
        ).scalar_one()
        share = float(missing or 0.0)
        out.append(
            line(
                label,
                share,
                f"{share:.1%} of accepted rows",
                rate(share, 0.10, 0.25),
                "<= 10% Green, <= 25% Amber",
            )
        )
    return [QualityLine(force, name, q.check, q.value, q.detail, q.rating, q.thresholds) for q in out]


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)
