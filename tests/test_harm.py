"""Harm scores: roll-up invariants on real months, an independent recomputation, and bad inputs."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from sqlalchemy import Connection, Engine, text

from geo.versions import store_version
from harm_index.periods import Period, add_months, named_periods, parse_period
from harm_index.scores import area_harm
from harm_index.weights import Scheme, load_scheme, read_user_scheme, shipped_ons_css_scheme, store_scheme
from harmmap.errors import InvalidParameterError, NotFoundError
from harmmap.settings import REPO_ROOT
from ingest.aggregate import fold_recent, recent_partition
from ingest.batch import ingest_file
from ingest.offences import ForceOffences
from ingest.police_uk import PoliceUkStreet
from ingest.reference import CensusEthnicityLsoa

HAMPSHIRE = "E23000030"
DATA = REPO_ROOT / "data"
STREET = [
    DATA / "police_uk" / "street" / "hampshire" / f"{m}-hampshire-street.csv" for m in ("2017-02", "2018-12")
]
RELATIVE = 1e-9
DEC_2018 = Period(dt.date(2018, 12, 1), dt.date(2018, 12, 1), "2018-12")


@pytest.fixture(scope="module")
def loaded(engine: Engine) -> Iterator[Scheme]:
    with engine.connect() as conn:
        before = conn.execute(text("SELECT coalesce(max(id), 0) FROM ingest_batches")).scalar_one()
    for path in STREET:
        ingest_file(engine, path, PoliceUkStreet())
    ingest_file(
        engine,
        DATA / "reference_layers" / "ts021_ethnic_group_broad_lsoa21_hampshire_westmidlands.csv",
        CensusEthnicityLsoa(),
    )
    scheme = shipped_ons_css_scheme(DATA)
    with engine.begin() as conn:
        store_scheme(conn, scheme)
    yield scheme
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM ingest_batches WHERE id > :id"), {"id": before})
        conn.execute(text("DELETE FROM weight_schemes"))


def test_roll_up_invariants_on_real_months(engine: Engine, loaded: Scheme) -> None:
    with engine.connect() as conn:
        per_level = dict(
            conn.execute(
                text(
                    "SELECT level, sum(incidents) FROM harm_monthly WHERE source = 'police_uk_street' "
                    "AND force_code = :f GROUP BY level"
                ),
                {"f": HAMPSHIRE},
            ).all()
        )
        incidents = conn.execute(
            text("SELECT count(*) FROM crimes WHERE force_code = :f"), {"f": HAMPSHIRE}
        ).scalar_one()
        with_point = conn.execute(
            text("SELECT count(*) FROM crimes WHERE force_code = :f AND h3_10 IS NOT NULL"), {"f": HAMPSHIRE}
        ).scalar_one()
    # force = sum of LADs = wards = LSOAs (both editions) = incidents assigned to the force
    for level in ("force", "local_authority", "ward", "lsoa21", "lsoa11"):
        assert per_level[level] == incidents, level
    # every H3 resolution = incidents with a point (ones placed by LSOA code have no cell, reported apart)
    for level in ("h3_7", "h3_8", "h3_9", "h3_10"):
        assert per_level[level] == with_point, level
    with engine.connect() as conn:
        accepted = conn.execute(
            text("SELECT sum(accepted) FROM ingest_batches WHERE source = 'police_uk_street'")
        ).scalar_one()
    assert incidents == accepted == 14_800 + 12_372  # every accepted row of both real months


def test_scores_sum_to_the_force(engine: Engine, loaded: Scheme) -> None:
    with engine.connect() as conn:
        wards = area_harm(conn, level="ward", force_code=HAMPSHIRE, period=DEC_2018, scheme=loaded)
        force = area_harm(conn, level="force", force_code=HAMPSHIRE, period=DEC_2018, scheme=loaded)
    assert len(wards.areas) == 261
    (whole,) = force.areas
    assert sum(a.incidents for a in wards.areas) == whole.incidents
    assert_allclose(sum(a.harm for a in wards.areas), whole.harm, rtol=RELATIVE)
    assert whole.population == 1_998_232


@pytest.mark.parametrize("folded", [False, True], ids=["recent", "folded"])
def test_hexes_over_whole_years_hold_every_incident_with_a_point(
    engine: Engine, loaded: Scheme, folded: bool
) -> None:
    """H3 cells are kept by month only; a period of whole years and quarters must still find them all
    (it found none when it asked for the year spans census geographies have)."""
    if folded:
        fold_recent(engine)
    years = parse_period("2017-01..2018-12", named_periods())
    assert {span for span, _ in years.spans()} == {12}
    with engine.connect() as conn:
        force = area_harm(conn, level="force", force_code=HAMPSHIRE, period=years, scheme=loaded)
        with_point = conn.execute(
            text("SELECT count(*) FROM crimes WHERE force_code = :f AND h3_10 IS NOT NULL"), {"f": HAMPSHIRE}
        ).scalar_one()
        for level in ("h3_7", "h3_10"):
            hexes = area_harm(conn, level=level, force_code=HAMPSHIRE, period=years, scheme=loaded)
            assert sum(a.incidents for a in hexes.areas) == with_point, level
    assert force.areas[0].incidents == 14_800 + 12_372 >= with_point > 0.99 * force.areas[0].incidents


def test_ward_harm_equals_an_independent_computation(engine: Engine, loaded: Scheme) -> None:
    """Recompute December 2018 ward harm straight from the CSV with geopandas and pandas."""
    raw = pd.read_csv(STREET[1], dtype=str, keep_default_na=False)
    raw = raw[(raw["Longitude"] != "") & (raw["Latitude"] != "")]
    points = gpd.GeoDataFrame(
        raw,
        geometry=gpd.points_from_xy(raw["Longitude"].astype(float), raw["Latitude"].astype(float)),
        crs=4326,
    )
    lsoa21 = gpd.read_file(DATA / "boundaries" / "lsoa" / "lsoa_dec2021_BSC_hampshire_westmidlands.geojson")
    lsoa21["geometry"] = lsoa21.geometry.make_valid()
    joined = gpd.sjoin(
        points,
        lsoa21[["lsoa21_code", "ward24_code", "pfa24_code", "geometry"]],
        predicate="within",
        how="left",
    )
    joined = joined[~joined.index.duplicated(keep="first")]
    # Points outside every 2021 outline: place them through the 2011 outline and the LSOA lookups.
    missing = joined["ward24_code"].isna()
    if missing.any():
        lsoa11 = gpd.read_file(
            DATA / "boundaries" / "lsoa" / "lsoa_dec2011_generalised_clipped_hampshire_westmidlands.geojson"
        )
        lsoa11["geometry"] = lsoa11.geometry.make_valid()
        second = gpd.sjoin(
            points.loc[missing[missing].index], lsoa11[["LSOA11CD", "geometry"]], predicate="within"
        )
        second = second[~second.index.duplicated(keep="first")]
        pairs = pd.read_csv(DATA / "boundaries" / "lookups" / "lsoa11_lsoa21_lad22_EW.csv", dtype=str)
        wards = pd.read_csv(DATA / "boundaries" / "lookups" / "lsoa21_ward24_lad24_pfa24_EW.csv", dtype=str)
        votes = (
            pairs.merge(wards, on="lsoa21_code").groupby(["lsoa11_code", "ward24_code", "pfa24_code"]).size()
        )
        votes = votes.reset_index(name="n").sort_values(
            ["lsoa11_code", "n", "ward24_code"], ascending=[True, False, True]
        )
        best = votes.drop_duplicates("lsoa11_code").set_index("lsoa11_code")
        joined.loc[second.index, "ward24_code"] = second["LSOA11CD"].map(best["ward24_code"])
        joined.loc[second.index, "pfa24_code"] = second["LSOA11CD"].map(best["pfa24_code"])
    mine = joined[joined["pfa24_code"] == HAMPSHIRE]
    weights = loaded.by_kind("police_uk_category")
    mine = mine.assign(weight=mine["Crime type"].map(weights).fillna(0.0))
    expected = mine.groupby("ward24_code")["weight"].sum()

    with engine.connect() as conn:
        result = area_harm(conn, level="ward", force_code=HAMPSHIRE, period=DEC_2018, scheme=loaded)
    got = pd.Series({a.code: a.harm for a in result.areas})
    got = got[got > 0]
    assert set(got.index) == set(expected[expected > 0].index)
    assert_allclose(
        got.sort_index().to_numpy(), expected[expected > 0].sort_index().to_numpy(), rtol=RELATIVE
    )


def test_shares_rates_and_caveats(engine: Engine, loaded: Scheme) -> None:
    with engine.connect() as conn:
        result = area_harm(conn, level="ward", force_code=HAMPSHIRE, period=DEC_2018, scheme=loaded)
    busiest = max(result.areas, key=lambda a: a.harm)
    assert_allclose(sum(busiest.harm_share.values()), 1.0, rtol=RELATIVE)
    assert busiest.harm_rate == pytest.approx(1000 * busiest.harm / (busiest.population or 1), rel=RELATIVE)
    lower, upper = busiest.harm_interval
    assert lower < busiest.harm < upper
    assert any("not where" in c and "live" in c for c in result.caveats)
    assert any("Anti-social behaviour has no weight" in c for c in result.caveats)
    assert result.unweighted["Anti-social behaviour"]["incidents"] > 0
    assert result.population_source and "Census 2021" in result.population_source


def test_change_against_baseline_is_per_month_with_a_flag(engine: Engine, loaded: Scheme) -> None:
    feb_2017 = Period(dt.date(2017, 2, 1), dt.date(2017, 2, 1), "2017-02")
    with engine.connect() as conn:
        result = area_harm(
            conn, level="force", force_code=HAMPSHIRE, period=DEC_2018, scheme=loaded, baseline=feb_2017
        )
        base = area_harm(conn, level="force", force_code=HAMPSHIRE, period=feb_2017, scheme=loaded)
    (now,), (then,) = result.areas, base.areas
    assert now.change is not None and now.change.ratio == pytest.approx(now.harm / then.harm, rel=RELATIVE)
    assert now.harm_per_month_change == pytest.approx(now.harm - then.harm, rel=RELATIVE)
    assert now.change.lower < now.change.ratio < now.change.upper  # type: ignore[operator]


def test_a_period_with_no_data_is_an_empty_result(engine: Engine, loaded: Scheme) -> None:
    with engine.connect() as conn:
        result = area_harm(
            conn,
            level="ward",
            force_code=HAMPSHIRE,
            period=parse_period("2022", named_periods()),
            scheme=loaded,
        )
    assert result.areas == []
    assert result.notes and "no incidents are loaded" in result.notes[-1]


def test_levels_without_population_give_no_rate_and_say_why(engine: Engine, loaded: Scheme) -> None:
    with engine.connect() as conn:
        hexes = area_harm(conn, level="h3_8", force_code=HAMPSHIRE, period=DEC_2018, scheme=loaded)
        lsoa11 = area_harm(conn, level="lsoa11", force_code=HAMPSHIRE, period=DEC_2018, scheme=loaded)
    assert hexes.areas and all(a.harm_rate is None and a.no_rate_reason for a in hexes.areas)
    assert "no resident count for H3" in (hexes.areas[0].no_rate_reason or "")
    assert lsoa11.areas[0].harm_rate is None and "2021 LSOAs" in (lsoa11.areas[0].no_rate_reason or "")


def test_unknown_scheme_and_level_are_clear_errors(engine: Engine, loaded: Scheme) -> None:
    with engine.connect() as conn:
        with pytest.raises(NotFoundError, match="no weight scheme nope"):
            load_scheme(conn, "nope")
        with pytest.raises(InvalidParameterError) as caught:
            area_harm(conn, level="county", force_code=HAMPSHIRE, period=DEC_2018, scheme=loaded)
    assert caught.value.parameter == "level" and "ward" in (caught.value.allowed or [])


def test_an_offence_code_missing_from_a_scheme_is_reported(engine: Engine, loaded: Scheme, tmp_path) -> None:  # type: ignore[no-untyped-def]
    offences = tmp_path / "offences.csv"
    offences.write_text(
        "incident_id,recorded_date,ho_offence_code,latitude,longitude\n"
        "A1,2019-03-04,8N,50.798900,-1.088000\nA2,2019-03-05,999Z,50.798900,-1.088000\n"
    )
    report = ingest_file(engine, offences, ForceOffences(), force_code=HAMPSHIRE)
    chi = tmp_path / "chi.csv"
    chi.write_text("offence_code,weight\n8N,30\n")
    try:
        with engine.connect() as conn:
            result = area_harm(
                conn,
                level="force",
                force_code=HAMPSHIRE,
                source="force_offences",
                period=parse_period("2019-03", named_periods()),
                scheme=read_user_scheme(chi, "chi-test", "1", "test"),
            )
        (force,) = result.areas
        assert force.harm == 30.0 and force.unweighted_incidents == 1
        assert result.unweighted["999Z"] == {
            "incidents": 1,
            "reason": "this ho offence code has no weight in the scheme",
        }
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM ingest_batches WHERE id = :b"), {"b": report.batch_id})


def test_zero_population_gives_no_rate() -> None:
    from harm_index.stats import rate_interval, rate_per_1000

    assert rate_per_1000(10, 0) is None and rate_interval(10, 0) is None


def test_named_periods_and_financial_years() -> None:
    named = named_periods()
    assert (named.baseline.start, named.baseline.end, named.baseline.months) == (
        dt.date(2018, 4, 1),
        dt.date(2023, 3, 1),
        60,
    )
    assert named.pre_covid.end == dt.date(2020, 2, 1) and named.covid.start == dt.date(2020, 3, 1)
    fy = parse_period("FY2019/20", named)
    assert (fy.start, fy.end, fy.months) == (dt.date(2019, 4, 1), dt.date(2020, 3, 1), 12)
    assert parse_period("2020", named).months == 12
    with pytest.raises(InvalidParameterError, match="not a period"):
        parse_period("last summer", named)
    with pytest.raises(InvalidParameterError, match="one year into the next"):
        parse_period("FY2019/22", named)
    assert np.isclose(parse_period("2018-04..2023-03", named).months, 60)


def test_periods_split_into_the_fewest_calendar_spans() -> None:
    named = named_periods()
    spans = named.baseline.spans()
    # Apr 2018 - Mar 2023: three quarters of 2018, four whole years, the first quarter of 2023.
    assert [s for s, _ in spans] == [3, 3, 3, 12, 12, 12, 12, 3]
    for period in ("2019-02..2020-11", "2019-06", "FY2019/20", "2020", "2018-12..2019-01"):
        p = parse_period(period, named)
        parts = p.spans()
        assert sum(s for s, _ in parts) == p.months
        assert parts[0][1] == p.start
        # Contiguous, each starting on its own span's calendar boundary.
        for (span, start), (_, following) in zip(parts, parts[1:], strict=False):
            assert add_months(start, span) == following
        assert all((start.month - 1) % span == 0 for span, start in parts)


def test_spatially_smoothed_rates_shrink_towards_neighbours(engine: Engine, loaded: Scheme) -> None:
    with engine.connect() as conn:
        result = area_harm(conn, level="ward", force_code=HAMPSHIRE, period=DEC_2018, scheme=loaded)
    rates = [
        (a.incident_rate, a.incident_rate_smoothed, a.incident_rate_smoothed_spatial) for a in result.areas
    ]
    assert all(s is not None and g is not None for _, g, s in rates)
    raw = np.array([r for r, _, _ in rates])
    spatial = np.array([s for _, _, s in rates])
    # Smoothing pulls the extremes in: the spread of smoothed rates is narrower than the raw one.
    assert spatial.std() < raw.std()


@pytest.mark.parametrize("folded", [False, True], ids=["recent", "folded"])
def test_deleting_a_batch_removes_its_counts_from_the_aggregate(
    engine: Engine, loaded: Scheme, folded: bool
) -> None:
    path = REPO_ROOT / "tests" / "corpus" / "police_uk" / "legacy_2011.csv"
    report = ingest_file(engine, path, PoliceUkStreet())
    if folded:
        fold_recent(engine)
    with engine.connect() as conn:
        added = conn.execute(
            text("SELECT level, sum(incidents) FROM harm_monthly WHERE batch_id = :b GROUP BY level"),
            {"b": report.batch_id},
        ).all()
    assert {level: n for level, n in added if not level.startswith("h3")} == dict.fromkeys(
        ("force", "local_authority", "ward", "lsoa21", "lsoa11"), report.accepted
    )
    assert _totals_match_counts(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM ingest_batches WHERE id = :b"), {"b": report.batch_id})
    with engine.connect() as conn:
        left = conn.execute(
            text("SELECT count(*) FROM harm_monthly WHERE batch_id = :b"), {"b": report.batch_id}
        ).scalar_one()
    assert left == 0
    assert _totals_match_counts(engine)
    with engine.connect() as conn:
        partition = conn.execute(text("SELECT to_regclass(:p)"), {"p": recent_partition(report.batch_id)})
        assert partition.scalar_one() is None


def test_folding_moves_a_batch_without_changing_any_figure(engine: Engine, loaded: Scheme) -> None:
    """A new batch is read from its own partition; folding it into harm_counts and harm_totals changes
    where it is read from, not what any query returns, and bumps the version tiles are keyed on."""
    path = DATA / "police_uk" / "street" / "west-midlands" / "2011-02-west-midlands-street.csv"
    fold_recent(engine)
    report = ingest_file(engine, path, PoliceUkStreet())
    period = parse_period("2011-02", named_periods())

    def figures() -> tuple[object, ...]:
        with engine.connect() as conn:
            ward = area_harm(conn, level="ward", force_code="E23000014", period=period, scheme=loaded)
            h3 = area_harm(conn, level="h3_8", force_code="E23000014", period=period, scheme=loaded)
            version = store_version(conn, "harm_aggregate")
        return (
            {a.code: (a.incidents, a.harm) for a in ward.areas},
            {a.code: (a.incidents, a.harm) for a in h3.areas},
            version,
        )

    try:
        with engine.connect() as conn:
            recent = conn.execute(text("SELECT batch_id FROM harm_recent_batches")).scalars().all()
        assert recent == [report.batch_id]
        ward_before, h3_before, version_before = figures()
        assert sum(n for n, _ in ward_before.values()) == report.accepted
        assert sum(n for n, _ in h3_before.values()) == report.accepted

        folded = fold_recent(engine)

        assert [f.batch_id for f in folded] == [report.batch_id] and folded[0].rows > report.accepted
        ward_after, h3_after, version_after = figures()
        assert (ward_after, h3_after) == (ward_before, h3_before)
        assert version_after != version_before
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM harm_recent_batches")).scalar_one() == 0
            assert (
                conn.execute(
                    text("SELECT to_regclass(:p)"), {"p": recent_partition(report.batch_id)}
                ).scalar_one()
                is None
            )
        assert _totals_match_counts(engine)
        assert fold_recent(engine) == []
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM ingest_batches WHERE id = :b"), {"b": report.batch_id})


def _forget_counts(conn: Connection, batch: int) -> None:
    """Take a batch's rows out of the aggregate, wherever they are (the caller rolls back)."""
    conn.execute(text("DELETE FROM harm_counts WHERE batch_id = :b"), {"b": batch})
    conn.execute(text("DELETE FROM harm_recent WHERE batch_id = :b"), {"b": batch})


def _totals_match_counts(engine: Engine) -> bool:
    """harm_totals is exactly the folded batches' counts summed (no zero rows left behind), and what
    census queries read equals every batch's counts summed."""
    key = "source, force_code, level, span, period_start, area, key_id, synthetic"

    def summed(conn: Connection, table: str) -> list[tuple[object, ...]]:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    # table is one of the fixed names below
                    f"SELECT {key}, sum(incidents) FROM {table} WHERE level <= 5 "
                    f"GROUP BY {key} ORDER BY {key}"
                )
            )
        ]

    with engine.connect() as conn:
        totals = [
            tuple(r) for r in conn.execute(text(f"SELECT {key}, incidents FROM harm_totals ORDER BY {key}"))
        ]
        folded = summed(conn, "harm_counts")
        every_batch = summed(conn, "harm_batch_counts")
        read = summed(conn, "harm_census_counts")
    return totals == folded and read == every_batch and len(read) > 0


def test_unmapped_2011_categories_are_their_own_unweighted_keys(engine: Engine, loaded: Scheme) -> None:
    path = REPO_ROOT / "tests" / "corpus" / "police_uk" / "legacy_2011.csv"
    report = ingest_file(engine, path, PoliceUkStreet())
    try:
        with engine.connect() as conn:
            keys = set(
                conn.execute(
                    text("SELECT DISTINCT key FROM harm_monthly WHERE batch_id = :b"), {"b": report.batch_id}
                ).scalars()
            )
            result = area_harm(
                conn,
                level="force",
                force_code="E23000014",
                period=parse_period("2011-02", named_periods()),
                scheme=loaded,
            )
        assert "Violent crime (2011 category)" in keys and "Burglary" in keys
        assert "2011 police.uk category" in str(result.unweighted["Violent crime (2011 category)"]["reason"])
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM ingest_batches WHERE id = :b"), {"b": report.batch_id})


def test_streamed_aggregate_equals_the_databases_own_computation(engine: Engine, loaded: Scheme) -> None:
    """The loader counts while it streams; harm_monthly_delta recounts from the stored rows. Same answer."""
    with engine.connect() as conn:
        batches = (
            conn.execute(text("SELECT id FROM ingest_batches WHERE source = 'police_uk_street' ORDER BY id"))
            .scalars()
            .all()
        )
        for batch in batches:
            streamed = conn.execute(
                text(
                    "SELECT source, force_code, level, area_code, month, key_kind, key, synthetic, "
                    "sum(incidents) FROM harm_monthly WHERE batch_id = :b "
                    "GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8"
                ),
                {"b": batch},
            ).all()
            recounted = conn.execute(
                text("SELECT * FROM harm_monthly_delta(ARRAY[:b]) ORDER BY 1, 2, 3, 4, 5, 6, 7, 8"),
                {"b": batch},
            ).all()
            assert [tuple(r) for r in streamed] == [tuple(r) for r in recounted]
            assert len(streamed) > 1000


def test_streamed_spans_equal_the_databases_rebuild(engine: Engine, loaded: Scheme) -> None:
    """Every span the loader wrote (month, quarter, year; ids, not codes) equals harm_counts_add's."""
    columns = "source, force_code, level, span, period_start, area, key_id, synthetic"
    query = text(
        f"SELECT {columns}, sum(incidents) FROM harm_batch_counts WHERE batch_id = :b "
        f"GROUP BY {columns} ORDER BY {columns}"
    )
    with engine.connect() as conn:
        batch = conn.execute(
            text("SELECT min(id) FROM ingest_batches WHERE source = 'police_uk_street'")
        ).scalar_one()
        streamed = [tuple(r) for r in conn.execute(query, {"b": batch})]
        _forget_counts(conn, batch)
        added = conn.execute(text("SELECT harm_counts_add(:b)"), {"b": batch}).scalar_one()
        rebuilt = [tuple(r) for r in conn.execute(query, {"b": batch})]
        conn.rollback()
    assert added == len(rebuilt)
    assert streamed == rebuilt
    assert {r[3] for r in streamed} == {1, 3, 12}


def test_partial_flushes_still_write_each_census_span_once(
    engine: Engine, loaded: Scheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past FLUSH_ROWS the loader writes H3 counts early but keeps census counts to the end: one row per
    (area, key, span) for the batch, and the same totals as the database's own rebuild."""
    monkeypatch.setattr("ingest.batch.FLUSH_ROWS", 2_000)
    monkeypatch.setattr("ingest.csvread.BLOCK_BYTES", 1 << 20)
    path = DATA / "police_uk" / "street" / "west-midlands" / "2011-02-west-midlands-street.csv"
    report = ingest_file(engine, path, PoliceUkStreet())
    columns = "source, force_code, level, span, period_start, area, key_id, synthetic"
    try:
        with engine.connect() as conn:
            repeats = conn.execute(
                text(
                    f"SELECT count(*) FROM (SELECT {columns} FROM harm_batch_counts WHERE batch_id = :b "
                    f"AND level <= 5 GROUP BY {columns} HAVING count(*) > 1) r"
                ),
                {"b": report.batch_id},
            ).scalar_one()
            query = text(
                f"SELECT {columns}, sum(incidents) FROM harm_batch_counts WHERE batch_id = :b "
                f"GROUP BY {columns} ORDER BY {columns}"
            )
            streamed = [tuple(r) for r in conn.execute(query, {"b": report.batch_id})]
            _forget_counts(conn, report.batch_id)
            conn.execute(text("SELECT harm_counts_add(:b)"), {"b": report.batch_id})
            rebuilt = [tuple(r) for r in conn.execute(query, {"b": report.batch_id})]
            conn.rollback()
        assert report.accepted > 20_000 and repeats == 0
        assert streamed == rebuilt
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM ingest_batches WHERE id = :b"), {"b": report.batch_id})


def test_a_period_summed_from_spans_equals_its_months_summed(engine: Engine, loaded: Scheme) -> None:
    """A period across quarter and year edges reads quarter/year spans; the months give the same."""
    with engine.connect() as conn:
        months = (
            conn.execute(
                text(
                    "SELECT DISTINCT month FROM harm_monthly WHERE source = 'police_uk_street' "
                    "AND force_code = :f ORDER BY 1"
                ),
                {"f": HAMPSHIRE},
            )
            .scalars()
            .all()
        )
        period = Period(min(months), max(months), "all loaded months")
        assert len(period.spans()) < period.months
        whole = area_harm(conn, level="ward", force_code=HAMPSHIRE, period=period, scheme=loaded)
        by_month: Counter[str] = Counter()
        for m in months:
            one = area_harm(conn, level="ward", force_code=HAMPSHIRE, period=Period(m, m, "m"), scheme=loaded)
            by_month.update({a.code: a.incidents for a in one.areas})
    assert {a.code: a.incidents for a in whole.areas if a.incidents} == +by_month


def test_cli_unknown_scheme_is_a_clear_error(settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from harmmap.cli import cli

    monkeypatch.setenv("HARMMAP_DATABASE_URL", settings.database_url)
    result = CliRunner().invoke(cli, ["harm", "--force", HAMPSHIRE, "--scheme", "cambridge-chi"])
    assert result.exit_code == 1
    assert "no weight scheme cambridge-chi" in result.output
    bad_level = CliRunner().invoke(cli, ["harm", "--force", HAMPSHIRE, "--level", "county"])
    assert bad_level.exit_code == 1 and "'county' is not a level" in bad_level.output


def test_a_fold_that_waits_out_a_reader_leaves_the_batch_recent_and_whole(
    engine: Engine, loaded: Scheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader idle in a transaction holds harm_recent; the fold gives up rather than queue every later
    query behind it, and the batch is still counted, from its partition; once the reader ends, it folds."""
    monkeypatch.setattr("ingest.aggregate.FOLD_LOCK_TIMEOUT", "1s")
    path = REPO_ROOT / "tests" / "corpus" / "police_uk" / "legacy_2011.csv"
    fold_recent(engine)
    report = ingest_file(engine, path, PoliceUkStreet())
    try:
        with engine.connect() as reader:
            reader.execute(text("SELECT count(*) FROM harm_recent")).scalar_one()
            left = fold_recent(engine)
            assert [(f.batch_id, f.rows, f.waited_out) for f in left] == [(report.batch_id, 0, True)]
            reader.rollback()
        assert _totals_match_counts(engine)
        with engine.connect() as conn:
            recent = conn.execute(text("SELECT batch_id FROM harm_recent_batches")).scalars().all()
            counted = conn.execute(
                text("SELECT sum(incidents) FROM harm_census_counts WHERE level = 1 AND span = 1")
            ).scalar_one()
        assert recent == [report.batch_id] and counted >= report.accepted
        assert [f.waited_out for f in fold_recent(engine)] == [False]
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM ingest_batches WHERE id = :b"), {"b": report.batch_id})
