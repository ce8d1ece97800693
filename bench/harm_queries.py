"""Benchmark: harm from the monthly aggregate, and refreshing the aggregate after a load.

Builds a scratch database with the migrations, loads boundaries, Census and the ONS CSS scheme, then
5,000,000 police.uk rows spread over the 60 baseline months (real Hampshire rows, replicated with jitter)
and a further 1,000,000. Measures:

* keeping the aggregate for the 1,000,000-row batch (the loader's own time on it, during the load);
* folding each load into harm_counts and harm_totals afterwards (off the load path);
* ward-level harm for Hampshire over the 60-month baseline, from the aggregate (median and p95 of 30),
  with the 1M batch still recent and again once it is folded.

Figures go to bench/results/harm_queries.{json,md}.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import sys
import time

from sqlalchemy import Engine, text

from bench.ingest_police_uk import SHARED, WORK, machine  # type: ignore[import-not-found]
from geo.load import load_boundaries
from harm_index.periods import named_periods
from harm_index.scores import HarmResult, area_harm
from harm_index.weights import Scheme, load_scheme, shipped_ons_css_scheme, store_scheme
from harmmap import db
from harmmap.settings import REPO_ROOT, get_settings
from ingest.aggregate import fold_recent
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
    folds: dict[int, float] = {}
    for rows in (5_000_000, 1_000_000):
        path = WORK / f"police-uk-baseline-{rows}.csv"
        if not path.exists():
            print(f"building {path.name} ...", file=sys.stderr)
            replicate_police_uk(sources, path, rows=rows, seed=rows + 1, months=BASELINE_MONTHS)
        print(f"loading {path.name} ...", file=sys.stderr)
        report = ingest_file(engine, path, PoliceUkStreet())
        loads[rows] = report
        if rows == 5_000_000:
            # The earlier loads are folded, as the CLI does after every ingest; the 1M batch is then
            # the one recent batch, read from its own partition until it is folded too.
            vacuum(engine)
            folds[rows] = sum(f.seconds for f in fold_recent(engine))
    # The aggregate is kept as the batch streams in: counting each block, then combining, COPY and index.
    refresh = loads[1_000_000].aggregate_seconds
    vacuum(engine)
    with engine.connect() as conn:
        scheme = load_scheme(conn, "ons-css")
    recent_timings, _ = ward_harm_timings(engine, scheme)
    folds[1_000_000] = sum(f.seconds for f in fold_recent(engine))
    vacuum(engine)
    timings, result = ward_harm_timings(engine, scheme)
    with engine.connect() as conn:
        incidents = conn.execute(text("SELECT count(*) FROM crimes")).scalar_one()
        aggregate_rows = conn.execute(text("SELECT count(*) FROM harm_counts")).scalar_one()
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
        "ward_harm_60_months_ms_with_the_1m_batch_recent": {
            "median": round(statistics.median(recent_timings), 1),
            "p95": round(sorted(recent_timings)[int(0.95 * len(recent_timings)) - 1], 1),
        },
        "fold_seconds": {str(k): round(v, 2) for k, v in folds.items()},
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
        f"* Keeping the aggregate for a 1,000,000-incident batch (counted while it loads, then COPY into "
        f"the batch's own partition and one sorted index build): **{refresh:.2f} s** (target <= 10 s). "
        f"Loader throughput with the aggregate, rows/s: {figures['loader_rows_per_s']}. By phase, seconds: "
        f"{figures['refresh_1m_phases_seconds']}.",
        "* Folding, after the load and off its path (the CLI does it after every ingest; figures read the "
        "same before and after), seconds by batch size: "
        f"{figures['fold_seconds']}.",
        "* Ward-level harm over the 60-month baseline while the 1M batch is still recent (read from its "
        f"partition): median **{figures['ward_harm_60_months_ms_with_the_1m_batch_recent']['median']} ms**, "
        f"p95 {figures['ward_harm_60_months_ms_with_the_1m_batch_recent']['p95']} ms.",
        "* Ward-level harm for Hampshire over the 60-month baseline, every batch folded "
        f"({len(result.areas)} wards, with "
        "intervals, rates and shares), from the aggregate: median "
        f"**{figures['ward_harm_60_months_ms']['median']} ms**, "
        f"p95 {figures['ward_harm_60_months_ms']['p95']} ms over {len(timings)} runs "
        "(target median <= 50 ms).",
        "",
    ]
    (RESULTS / "harm_queries.md").write_text("\n".join(md))
    print("\n".join(md))


def vacuum(engine: Engine) -> None:
    """Autovacuum does this after bulk writes; done here so timings do not depend on when it ran."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in ("harm_counts", "harm_totals", "harm_recent"):
            conn.execute(text(f"VACUUM (ANALYZE) {table}"))


def ward_harm_timings(engine: Engine, scheme: Scheme) -> tuple[list[float], HarmResult]:
    """Ward harm for Hampshire over the baseline, 31 runs; the first (warming the caches) is dropped."""
    baseline = named_periods().baseline
    timings = []
    with engine.connect() as conn:
        for _ in range(31):
            start = time.perf_counter()
            result = area_harm(conn, level="ward", force_code="E23000030", period=baseline, scheme=scheme)
            timings.append((time.perf_counter() - start) * 1000)
    return timings[1:], result


if __name__ == "__main__":
    main()
