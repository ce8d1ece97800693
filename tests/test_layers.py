"""Disparity layers: disproportionality, exposure, calls demand, trauma score, hot spots, disclosure."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import esda
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from libpysal.weights import lat2W
from numpy.testing import assert_allclose
from scipy.stats import rankdata, spearmanr
from sqlalchemy import Engine, text
from statsmodels.stats.rates import confint_poisson_2indep

from harm_index.demand import PersistentRule, call_demand, persistent_callers
from harm_index.disclosure import Disclosure
from harm_index.disparity import group_rate_rows, stop_search_disparity
from harm_index.exposure import harm_exposure, victimisation
from harm_index.hotspots import gi_star, local_statistics
from harm_index.periods import Period
from harm_index.population import residents_by_group
from harm_index.scores import area_harm
from harm_index.stats import rate_ratio_katz
from harm_index.trauma import (
    IMD_WEIGHTS,
    TraumaConfig,
    exponential_transform,
    imd_from_domain_ranks,
    rank_and_decile,
    sensitivity,
    trauma_scores,
)
from harm_index.weights import Scheme
from harmmap.errors import InvalidParameterError
from harmmap.settings import REPO_ROOT
from ingest.batch import ingest_file
from ingest.offences import ForceOffences

HAMPSHIRE = "E23000030"
DATA = REPO_ROOT / "data"
WINTER = Period(dt.date(2018, 12, 1), dt.date(2019, 3, 1), "2018-12 to 2019-03")
DECEMBER = Period(dt.date(2018, 12, 1), dt.date(2018, 12, 1), "2018-12")


# --- formulas against hand-computed cases -------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "pa", "b", "pb"), [(30, 1000, 60, 10000), (7, 250, 120, 31000), (1, 50, 3, 90)]
)
def test_katz_interval_matches_statsmodels(a: int, pa: float, b: int, pb: float) -> None:
    ours = rate_ratio_katz(a, pa, b, pb)
    low, high = confint_poisson_2indep(a, pa, b, pb, method="wald-log", compare="ratio")
    assert_allclose([ours.lower, ours.upper], [low, high], rtol=1e-6)


def test_group_rates_and_ratio_against_white_by_hand() -> None:
    rows = group_rate_rows(
        "E05000001",
        "Somewhere",
        {"Black": 30, "White": 60, "Asian": 0},
        {"Black": 1000, "White": 10000, "Asian": 500, "Mixed": 0, "Other": 200},
        Disclosure(active=False),
    )
    by = {r["group"]: r for r in rows}
    assert by["Black"]["rate"] == pytest.approx(30.0) and by["White"]["rate"] == pytest.approx(6.0)
    assert by["Black"]["ratio"] == pytest.approx(5.0)
    half = 1.959963984540054 * math.sqrt(1 / 30 + 1 / 60)
    assert_allclose(by["Black"]["ratio_interval"], [5 * math.exp(-half), 5 * math.exp(half)], rtol=1e-9)
    assert by["Black"]["significant"] is True
    # A group with no residents has no rate, and says why; so does its ratio.
    assert by["Mixed"]["rate"] is None and "no Census residents" in by["Mixed"]["rate_reason"]
    assert by["Mixed"]["ratio"] is None and "no residents" in by["Mixed"]["ratio_reason"]
    # No searches of a group: the ratio is 0 but its log interval is undefined.
    assert by["Asian"]["ratio"] == 0.0 and by["Asian"]["ratio_interval"] is None


def test_no_white_searches_leaves_the_ratio_undefined_with_the_reason() -> None:
    rows = group_rate_rows("X", None, {"Black": 12}, {"Black": 1000, "White": 5000}, Disclosure(active=False))
    black = next(r for r in rows if r["group"] == "Black")
    assert black["ratio"] is None and black["ratio_interval"] is None
    assert "no White searches" in black["ratio_reason"]


def test_disclosure_withholds_small_counts_and_what_is_built_on_them() -> None:
    rule = Disclosure(threshold=4)
    assert [rule.is_disclosive(n) for n in (0, 1, 4, 5, None)] == [False, True, True, False, False]
    assert not Disclosure(threshold=4, active=False).is_disclosive(3)
    rows = group_rate_rows(
        "X", None, {"Black": 3, "White": 40, "Asian": 9}, {"Black": 800, "White": 9000, "Asian": 700}, rule
    )
    by = {r["group"]: r for r in rows}
    assert by["Black"]["searches"] is None
    assert {"searches", "rate", "rate_interval", "ratio", "ratio_interval"} <= set(by["Black"]["withheld"])
    assert by["Black"]["rate"] is None and by["Black"]["ratio"] is None
    assert by["Asian"]["searches"] == 9 and by["Asian"]["withheld"] == {}
    # A small White count withholds every ratio built on it, though the groups' own counts stand.
    rows = group_rate_rows("X", None, {"Black": 20, "White": 2}, {"Black": 800, "White": 9000}, rule)
    black = next(r for r in rows if r["group"] == "Black")
    assert (
        black["searches"] == 20
        and black["ratio"] is None
        and "White comparison" in black["withheld"]["ratio"]
    )
    with pytest.raises(ValueError):
        Disclosure(threshold=-1)


def test_exponential_transform_by_hand() -> None:
    k = 1 - math.exp(-100 / 23)
    assert_allclose(
        exponential_transform([1.0, 0.5, 1e-9]), [100.0, -23 * math.log(1 - 0.5 * k), 0.0], atol=1e-6
    )
    with pytest.raises(ValueError):
        exponential_transform([0.0])
    rank, decile = rank_and_decile(np.array([5.0, 1.0, 3.0, 9.0]))
    assert rank.tolist() == [2, 4, 3, 1] and decile.tolist() == [5, 10, 8, 3]


def test_the_imd_method_reproduces_the_published_imd_2019_ranking() -> None:
    """Fed the published domain ranks and IMD weights, the trauma score's method gives IMD's order.

    IMD 2019 *is* this combination (exponentially transformed domain ranks, weighted), so anything short
    of the same order would be a bug; only ties in the published ranks could move an area. Nationally
    (checked outside the suite) the largest displacement is 2 ranks of 32,844 and every decile matches;
    on the two pilot forces' 2,874 LSOAs shipped here the order is identical.
    """
    imd = pd.read_csv(DATA / "reference_layers" / "imd2019_lsoa11_ranks_deciles_hampshire_westmidlands.csv")
    score = imd_from_domain_ranks({d: imd[f"{d}_rank"].to_numpy() for d in IMD_WEIGHTS})
    ours = rankdata(-score)
    published = rankdata(imd["IMD_rank"].to_numpy())
    assert spearmanr(ours, published).statistic > 0.99999
    assert np.max(np.abs(ours - published)) <= 2


def test_trauma_config_is_versioned_and_validated() -> None:
    assert TraumaConfig().version == TraumaConfig().version
    assert TraumaConfig().version != TraumaConfig({"harm": 0.5, "calls": 0.5}).version
    with pytest.raises(InvalidParameterError, match="unknown trauma domains"):
        TraumaConfig({"harm": 1, "vibes": 1})
    with pytest.raises(InvalidParameterError):
        TraumaConfig({"harm": 0})


def test_sensitivity_reports_rank_correlation_and_decile_changes() -> None:
    rng = np.random.default_rng(3)
    transformed = {
        d: exponential_transform(rng.permutation(np.arange(1, 201)) / 200) for d in ("a", "b", "c")
    }
    report = sensitivity(transformed, {"a": 0.5, "b": 0.3, "c": 0.2})
    assert len(report["runs"]) == 6
    assert 0.8 < report["min_spearman"] <= 1
    assert 0 <= report["max_share_changing_decile"] < 0.5
    same = sensitivity({"a": transformed["a"]}, {"a": 1.0})
    assert same["min_spearman"] == pytest.approx(1.0) and same["max_share_changing_decile"] == 0


@pytest.mark.filterwarnings("ignore:The alternative hypothesis:DeprecationWarning")
def test_gi_star_matches_esda_and_the_formula_by_hand() -> None:
    w = lat2W(4, 4, rook=False)
    y = np.array([9.0, 8, 1, 1, 7, 9, 1, 2, 1, 1, 2, 1, 2, 1, 1, 1])
    ours = gi_star(y, w, permutations=99, seed=1)
    theirs = esda.G_Local(y, w, transform="B", star=True, permutations=99, seed=1, n_jobs=1)
    assert_allclose(ours.Zs, theirs.Zs)
    assert_allclose(ours.p_sim, theirs.p_sim)
    # Gi* (Ord & Getis 1995) for area 0 by hand, binary weights with the area itself included.
    n, mean, s = len(y), y.mean(), y.std()
    wi = np.zeros(n)
    wi[[0, *w.neighbors[0]]] = 1
    z = (wi @ y - mean * wi.sum()) / (s * math.sqrt((n * (wi**2).sum() - wi.sum() ** 2) / (n - 1)))
    assert ours.Zs[0] == pytest.approx(z)


def test_local_statistics_find_the_hot_corner_and_skip_an_area_with_no_neighbours() -> None:
    w = lat2W(6, 6, rook=False)
    codes = [f"a{i:02d}" for i in range(36)]
    y = np.ones(36)
    y[[0, 1, 6, 7]] = 50.0
    neighbours = {codes[i]: [codes[j] for j in w.neighbors[i]] for i in range(36)}
    codes.append("island")
    neighbours["island"] = []
    y = np.append(y, 99.0)
    areas, gi_cut, moran_cut = local_statistics(codes, y, neighbours, permutations=999, seed=2)
    by = {a["code"]: a for a in areas}
    assert by["island"]["tested"] is False and "no neighbours" in by["island"]["reason"]
    assert by["a00"]["gi_class"] == "hot spot" and by["a07"]["moran_class"] == "high-high"
    # The far corner sits among below-average values: never a hot spot.
    assert by["a35"]["gi_class"] != "hot spot" and by["a35"]["gi_z"] < 0
    assert gi_cut is not None and moran_cut is not None
    # Identical values: nothing to test, and it says so.
    flat, _, _ = local_statistics(codes[:36], np.ones(36), dict(list(neighbours.items())[:36]))
    assert all(not a["tested"] and "identical" in a["reason"] for a in flat)


# --- the layers on the real Hampshire data -----------------------------------------------------------


def test_stop_search_disparity_counts_add_up(engine: Engine, layers: Scheme) -> None:
    with engine.connect() as conn:
        result = stop_search_disparity(
            conn, level="force", force_code=HAMPSHIRE, period=WINTER, disclosure=Disclosure(active=False)
        )
        stored = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE search_type <> 'Vehicle search'), "
                "count(*) FILTER (WHERE search_type = 'Vehicle search') FROM stop_searches "
                "WHERE force_code = :f AND month >= :s AND month < :e"
            ),
            {"f": HAMPSHIRE, "s": WINTER.start, "e": WINTER.end_exclusive},
        ).one()
        population = residents_by_group(conn, "force", HAMPSHIRE)[HAMPSHIRE]
    grouped = sum(r["searches"] for r in result.rates)
    unassigned = result.unassigned[0]
    assert grouped + unassigned["not_stated"] == stored[0] == unassigned["person_searches"]
    assert unassigned["vehicle_only"] == stored[1]
    black = next(r for r in result.rates if r["group"] == "Black")
    white = next(r for r in result.rates if r["group"] == "White")
    assert black["rate"] == pytest.approx(1000 * black["searches"] / population["Black"])
    assert black["ratio"] == pytest.approx(black["rate"] / white["rate"])
    low, high = black["ratio_interval"]
    assert low < black["ratio"] < high
    # Not-stated searches bound how far the ratio could move.
    assert (
        unassigned["black_white_ratio_if_not_stated_all_white"]
        <= unassigned["black_white_ratio"]
        <= unassigned["black_white_ratio_if_not_stated_all_black"]
    )
    # Legislation breakdowns sum to the whole; outcome stages use searches as their base.
    assert sum(r["searches"] for r in result.by_legislation) == grouped
    arrests = [r for r in result.outcomes if r["outcome"] == "Arrest" and r["group"] == "Black"]
    assert arrests and arrests[0]["searched"] == black["searches"]
    assert any("not the people" in c for c in result.caveats)


def test_stop_search_disparity_by_ward_withholds_small_counts(engine: Engine, layers: Scheme) -> None:
    with engine.connect() as conn:
        public = stop_search_disparity(conn, level="ward", force_code=HAMPSHIRE, period=WINTER)
        analyst = stop_search_disparity(
            conn, level="ward", force_code=HAMPSHIRE, period=WINTER, disclosure=Disclosure(active=False)
        )
        s60 = stop_search_disparity(
            conn,
            level="force",
            force_code=HAMPSHIRE,
            period=WINTER,
            legislation=["s60 CJPOA"],
            basis="officer",
        )
    withheld = [r for r in public.rates if "searches" in r["withheld"]]
    assert withheld and all(r["rate"] is None and r.get("ratio") is None for r in withheld)
    originals = {(r["code"], r["group"]): r["searches"] for r in analyst.rates}
    assert all(1 <= originals[(r["code"], r["group"])] <= 4 for r in withheld)
    assert all(r["withheld"] == {} for r in analyst.rates)
    assert {r["legislation"] for r in s60.by_legislation} <= {"s60 CJPOA"}
    with pytest.raises(InvalidParameterError, match="legislation"):
        with engine.connect() as conn:
            stop_search_disparity(
                conn, level="force", force_code=HAMPSHIRE, period=WINTER, legislation=["s99"]
            )


def test_exposure_is_the_resident_weighted_mean_of_lsoa_harm_rates(engine: Engine, layers: Scheme) -> None:
    with engine.connect() as conn:
        result = harm_exposure(conn, level="force", force_code=HAMPSHIRE, period=DECEMBER, scheme=layers)
        lsoa = area_harm(conn, level="lsoa21", force_code=HAMPSHIRE, period=DECEMBER, scheme=layers)
        population = residents_by_group(conn, "lsoa21", HAMPSHIRE)
        wards = harm_exposure(conn, level="ward", force_code=HAMPSHIRE, period=DECEMBER, scheme=layers)
    rates = {a.code: a.harm_rate for a in lsoa.areas if a.harm_rate is not None}
    for group in ("Black", "White"):
        num = sum(rates[c] * population[c][group] for c in rates)
        den = sum(population[c][group] for c in rates)
        assert result.areas[0]["exposure"][group] == pytest.approx(num / den, rel=1e-12)
    force = result.areas[0]
    assert force["ratio"] == pytest.approx(force["exposure"]["Black"] / force["exposure"]["White"])
    assert force["ratio_interval"][0] < force["ratio"] < force["ratio_interval"][1]
    assert "Area-level exposure" in result.caveats[0]
    assert any(a["interval_note"] for a in wards.areas if a.get("ratio"))


def test_calls_demand_with_and_without_persistent_callers(engine: Engine, layers: Scheme) -> None:
    rule = PersistentRule(min_calls=10, window_days=30)
    with engine.connect() as conn:
        flagged = persistent_callers(conn, HAMPSHIRE, DECEMBER, rule)
        result = call_demand(
            conn,
            level="force",
            force_code=HAMPSHIRE,
            period=DECEMBER,
            rule=rule,
            disclosure=Disclosure(active=False),
        )
        calls = pd.read_sql(
            text(
                "SELECT caller_ref, received_at FROM calls WHERE force_code = :f AND caller_ref IS NOT NULL"
            ),
            conn,
            params={"f": HAMPSHIRE},
        )
    # The rule, independently: any caller with >= 10 calls inside some closed 30-day window.
    expected = set()
    calls["received_at"] = pd.to_datetime(calls["received_at"], utc=True).dt.tz_localize(None)
    frequent = calls.groupby("caller_ref").filter(lambda g: len(g) >= 10)
    for ref, times in frequent.groupby("caller_ref")["received_at"]:
        t = np.sort(times.to_numpy())
        ends = np.searchsorted(t, t + np.timedelta64(30, "D"), side="right")
        if np.max(ends - np.arange(len(t))) >= 10:
            expected.add(ref)
    assert set(flagged) == expected and len(expected) >= 1
    everything = next(g for g in result.areas[0]["groups"] if g["group"] == "all")
    assert everything["calls"] == result.calls
    assert everything["from_persistent_callers"] == result.persistent_calls == sum(flagged.values())
    assert (
        everything["calls_without_persistent"] == everything["calls"] - everything["from_persistent_callers"]
    )
    assert everything["rate_without_persistent"] < everything["rate"]
    assert result.synthetic and any("SYNTHETIC" in c for c in result.caveats)


def test_trauma_scores_for_wards(engine: Engine, layers: Scheme) -> None:
    with engine.connect() as conn:
        result = trauma_scores(conn, level="ward", force_code=HAMPSHIRE, period=DECEMBER, scheme=layers)
    scored = [a for a in result.areas if a["score"] is not None]
    assert len(scored) > 200 and result.domains_left_out == {}
    assert sum(result.weights.values()) == pytest.approx(1.0)
    for a in scored[:20]:
        assert a["score"] == pytest.approx(sum(d["contribution"] for d in a["domains"].values()))
    ranks = sorted(a["rank"] for a in scored)
    assert ranks[0] == 1 and {a["decile"] for a in scored} == set(range(1, 11))
    assert result.config_version.startswith("trauma-v1-")
    assert result.synthetic and 0 < result.sensitivity["min_spearman"] <= 1


def test_layer_commands_write_json(settings, monkeypatch, tmp_path: Path, layers: Scheme) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from harmmap.cli import cli

    monkeypatch.setenv("HARMMAP_DATABASE_URL", settings.database_url)
    runner = CliRunner()
    for command in (
        ["disparity", "--level", "force", "--period", "2018-12..2019-03"],
        ["exposure", "--period", "2018-12"],
        ["demand", "--level", "force", "--period", "2018-12"],
        ["trauma", "--level", "ward", "--period", "2018-12"],
        ["hotspots", "--level", "ward", "--period", "2018-12", "--permutations", "99"],
    ):
        out = tmp_path / f"{command[0]}.json"
        result = runner.invoke(cli, [*command, "--force", HAMPSHIRE, "--out", str(out)])
        assert result.exit_code == 0, result.output
        payload = json.loads(out.read_text())
        assert payload["caveats"], command[0]
    bad = runner.invoke(cli, ["trauma", "--force", HAMPSHIRE, "--weights", "harm=x"])
    assert bad.exit_code == 1 and "--weights" in bad.output


def test_victimisation_rates_by_group_from_force_records(engine: Engine, layers: Scheme) -> None:
    report = ingest_file(engine, REPO_ROOT / "tests" / "corpus" / "offences" / "cases.csv", ForceOffences())
    march = Period(dt.date(2019, 3, 1), dt.date(2019, 3, 1), "2019-03")
    with engine.connect() as conn:
        analyst = victimisation(
            conn, level="force", force_code=HAMPSHIRE, period=march, disclosure=Disclosure(active=False)
        )
        public = victimisation(conn, level="force", force_code=HAMPSHIRE, period=march)
        stored = dict(
            conn.execute(
                text(
                    "SELECT coalesce(victim_group, 'Not stated'), count(*) FROM offences "
                    "WHERE batch_id = :b AND force_code = :f GROUP BY 1"
                ),
                {"b": report.batch_id, "f": HAMPSHIRE},
            ).all()
        )
    by = {r["group"]: r for r in analyst["rates"]}
    assert by["Black"]["victims"] == stored.get("Black", 0) >= 1
    assert by["Black"]["rate"] == pytest.approx(1000 * by["Black"]["victims"] / by["Black"]["residents"])
    assert analyst["victim_ethnicity_not_stated"] == stored.get("Not stated", 0)
    assert analyst["offences"] == sum(stored.values())
    # One or two victims of a group in a month: withheld for anyone but an analyst.
    small = [r for r in public["rates"] if "victims" in r["withheld"]]
    assert small and all(r["victims"] is None and r["rate"] is None for r in small)
    # Ratios against a withheld White count are withheld too, though the group's own count stands.
    if "victims" in next(r for r in public["rates"] if r["group"] == "White")["withheld"]:
        assert all(r.get("ratio") is None for r in public["rates"])


# --- the layers over HTTP ------------------------------------------------------------------------------


def test_analysis_endpoints_answer_with_caveats_and_method(
    client: TestClient, layers: Scheme, api_keys: dict[str, str]
) -> None:
    common = {"force": HAMPSHIRE, "period": "2018-12"}
    # Calls and the trauma score draw on force-held data: a lead key sees them, with disclosure control.
    lead = {"X-API-Key": api_keys["lead"]}
    for path, params in (
        ("/disproportionality", {**common, "period": "2018-12..2019-03"}),
        ("/exposure", common),
        ("/calls", {**common, "level": "force"}),
        ("/trauma-scores", common),
        ("/hotspots", {**common, "permutations": 99}),
    ):
        response = client.get(path, params=params, headers=lead)
        assert response.status_code == 200, (path, response.text)
        body = response.json()
        assert body["caveats"] and body["method"], path
        assert body["metadata"]["service_version"]
    rates = client.get("/disproportionality", params={**common, "level": "ward"}).json()["rates"]
    assert any(r["withheld"] for r in rates), "public callers get disclosure control"
    calls = client.get("/calls", params={**common, "level": "force"}, headers=lead).json()
    assert calls["synthetic"] is True and any("SYNTHETIC" in c for c in calls["caveats"])
    assert client.get("/calls", params={**common, "level": "force"}).status_code == 403
    trauma = client.get("/trauma-scores", params=common, headers=lead).json()
    assert trauma["metadata"]["config_version"] == trauma["config_version"]


def test_area_summary_is_a_monthly_series_against_the_baseline(client: TestClient, layers: Scheme) -> None:
    with client as c:
        ward = c.get(
            "/collections/wards/items",
            params={"force": HAMPSHIRE, "limit": 1, "sortby": "-incidents", "period": "2018-12"},
        ).json()["features"][0]
        body = c.get(
            f"/areas/{ward['id']}/summary", params={"level": "ward", "period": "2018-11..2019-01"}
        ).json()
    assert [m["month"] for m in body["months"]] == ["2018-11", "2018-12", "2019-01"]
    december = body["months"][1]
    assert december["incidents"] == ward["properties"]["incidents"]
    assert sum(n for n in december["by_category"].values() if n) <= december["incidents"]
    assert body["months"][0]["incidents"] == 0
    assert december["ratio_interval"][0] < december["ratio_to_baseline"] < december["ratio_interval"][1]


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("/disproportionality", {}, "force"),
        ("/disproportionality", {"force": HAMPSHIRE, "level": "county"}, "level"),
        ("/disproportionality", {"force": HAMPSHIRE, "ethnicity": "vibes"}, "ethnicity"),
        ("/disproportionality", {"force": HAMPSHIRE, "legislation": "s99"}, "legislation"),
        ("/exposure", {"force": HAMPSHIRE, "period": "2019-99"}, "period"),
        ("/trauma-scores", {"force": HAMPSHIRE, "level": "h3_8"}, "level"),
        ("/hotspots", {"force": HAMPSHIRE, "permutations": 5}, "permutations"),
        ("/calls", {"force": "E23000030' OR 1=1"}, "force"),
        ("/areas/E05999999/summary", {"level": "ward"}, "code"),
        ("/areas/E05002441/summary", {"level": "ward", "scheme": "nope"}, "scheme"),
    ],
)
def test_analysis_bad_input_names_the_parameter(
    client: TestClient,
    layers: Scheme,
    api_keys: dict[str, str],
    path: str,
    params: dict[str, object],
    parameter: str,
) -> None:
    response = client.get(path, params=params, headers={"X-API-Key": api_keys["lead"]})
    assert response.status_code in (404, 422), response.text
    assert response.json()["parameter"] == parameter
