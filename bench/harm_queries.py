"""Benchmark: harm from the monthly aggregate, and refreshing the aggregate after a load.

Builds a scratch database with the migrations, loads boundaries, Census and the ONS CSS scheme, then
5,000,000 police.uk rows spread over the 60 baseline months (real Hampshire rows, replicated with jitter)
and a further 1,000,000. Measures:

* keeping the aggregate for the 1,000,000-row batch (the loader's own time on it, during the load);
* ward-level harm for Hampshire over the 60-month baseline, from the aggregate (median and p95 of 30).

Figures go to bench/results/harm_queries.{json,md}.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import sys
import time

from sqlalchemy import text

from bench.ingest_police_uk import SHARED, WORK, machine  # type: ignore[import-not-found]
from geo.load import load_boundaries
from harm_index.periods import named_periods
from harm_index.scores import area_harm
from harm_index.weights import load_scheme, shipped_ons_css_scheme, store_scheme
from harmmap import db
from harmmap.settings import REPO_ROOT, get_settings
from ingest.batch import ingest_file
from ingest.police_uk import PoliceUkStreet
from ingest.reference import CensusEthnicityLsoa
from ingest.replicate import replicate_police_uk

RESULTS = REPO_ROOT / "bench" / "results"
BASELINE_MONTHS = [f"{2018 + (3 + i) // 12}-{(3 + i) % 12 + 1:02d}" for i in range(60)]


def main() -> None:
    url = get_settings().db_url
    url = url.set(database=f"{url.database}_bench_harm")
    db.drop_database(url)
    db.ensure_database(url)
    db.upgrade(url)
    engine = db.create_db_engine(get_settings(database_url=url.render_as_string(hide_password=False)))
    data = REPO_ROOT / "data"
    with engine.begin() as conn:
        load_boundaries(conn, data / "boundaries" / "manifest.toml")
        store_scheme(
            conn,
            shipped_ons_css_scheme(data),
        )
    ingest_file(
        engine,
        data / "reference_layers" / "ts021_ethnic_group_broad_lsoa21_hampshire_westmidlands.csv",
        CensusEthnicityLsoa(),
    )
    WORK.mkdir(exist_ok=True)
    sources = sorted(SHARED.glob("*.csv"))
    loads = {}
    for rows in (5_000_000, 1_000_000):
        path = WORK / f"police-uk-baseline-{rows}.csv"
        if not path.exists():
            print(f"building {path.name} ...", file=sys.stderr)
            replicate_police_uk(sources, path, rows=rows, seed=rows + 1, months=BASELINE_MONTHS)
        print(f"loading {path.name} ...", file=sys.stderr)
        report = ingest_file(engine, path, PoliceUkStreet())
        loads[rows] = report
    # The aggregate is kept as the batch streams in: counting each block, then combining and COPY.
    refresh = loads[1_000_000].aggregate_seconds
    # Autovacuum does this after bulk inserts; done here so the timing does not depend on when it ran.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE) harm_counts"))
        conn.execute(text("VACUUM (ANALYZE) harm_totals"))
    with engine.connect() as conn:
        incidents = conn.execute(text("SELECT count(*) FROM crimes")).scalar_one()
        aggregate_rows = conn.execute(text("SELECT count(*) FROM harm_counts")).scalar_one()
        scheme = load_scheme(conn, "ons-css")
        baseline = named_periods().baseline
        timings = []
        for _ in range(31):
            start = time.perf_counter()
            result = area_harm(conn, level="ward", force_code="E23000030", period=baseline, scheme=scheme)
            timings.append((time.perf_counter() - start) * 1000)
        timings = timings[1:]  # the first run warms the caches
    engine.dispose()
    figures = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "incidents_loaded": incidents,
        "aggregate_rows": aggregate_rows,
        "refresh_1m_seconds": round(refresh, 2),
        "ward_harm_60_months_ms": {
            "median": round(statistics.median(timings), 1),
            "p95": round(sorted(timings)[int(0.95 * len(timings)) - 1], 1),
            "runs": len(timings),
        },
        "wards": len(result.areas),
        "loader_rows_per_s": {str(k): round(v.rows_per_s) for k, v in loads.items()},
        "refresh_1m_phases_seconds": {k: round(v, 2) for k, v in loads[1_000_000].aggregate_phases.items()},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "harm_queries.json").write_text(json.dumps(figures, indent=2) + "\n")
    md = [
        "# Harm from the aggregate",
        "",
        f"Measured {figures['when']} on {figures['machine']}.",
        "",
        f"* Incidents loaded: {incidents:,} (real Hampshire police.uk rows replicated with jitter, "
        f"spread over the 60 baseline months); aggregate rows: {aggregate_rows:,}.",
        f"* Keeping the aggregate for a 1,000,000-incident batch (counted while it loads, then COPY): "
        f"**{refresh:.2f} s** (target <= 10 s). Loader throughput with the aggregate, rows/s: "
        f"{figures['loader_rows_per_s']}. By phase, seconds: {figures['refresh_1m_phases_seconds']}.",
        f"* Ward-level harm for Hampshire over the 60-month baseline ({len(result.areas)} wards, with "
        "intervals, rates and shares), from the aggregate: median "
        f"**{figures['ward_harm_60_months_ms']['median']} ms**, "
        f"p95 {figures['ward_harm_60_months_ms']['p95']} ms over {len(timings)} runs "
        "(target median <= 50 ms).",
        "",
    ]
    (RESULTS / "harm_queries.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
