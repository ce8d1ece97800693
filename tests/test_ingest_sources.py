"""Force offences, calls for service, the reference layers, the calls generator and the quality report."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, text

from harmmap.errors import DataFileError
from harmmap.settings import REPO_ROOT
from ingest.batch import IngestReport, ingest_file
from ingest.calls import CallsForService
from ingest.generate_calls import generate_calls, month_range
from ingest.offences import ForceOffences
from ingest.quality import quality_report, rate
from ingest.reference import CensusEthnicityLad, CensusEthnicityLsoa, ImdRanks, ImdSubdomains

CORPUS = REPO_ROOT / "tests" / "corpus"
REFERENCE = REPO_ROOT / "data" / "reference_layers"
HAMPSHIRE = "E23000030"


pytestmark = pytest.mark.usefixtures("fresh_batches")


def rejects(engine: Engine, report: IngestReport) -> dict[int, str]:
    assert report.accepted + report.rejected == report.data_rows
    with engine.connect() as conn:
        return dict(
            conn.execute(
                text("SELECT line, kind FROM ingest_rejects WHERE batch_id = :b"), {"b": report.batch_id}
            ).all()
        )


def test_force_offences_cases(engine: Engine) -> None:
    report = ingest_file(engine, CORPUS / "offences" / "cases.csv", ForceOffences(), force_code=HAMPSHIRE)
    assert rejects(engine, report) == {
        4: "bad_code",
        5: "bad_date",
        6: "bad_month",
        7: "missing_value",
        8: "duplicate_id",
        9: "unknown_category",
        10: "outside_force",
        11: "no_location",
    }
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT line, ho_offence_code, victim_group, month FROM offences "
                "WHERE batch_id = :b ORDER BY line"
            ),
            {"b": report.batch_id},
        ).all()
    assert [(r.line, r.ho_offence_code, r.victim_group) for r in rows] == [
        (2, "8N", "Black"),
        (3, "28E", "White"),
        (12, "3A", "Not stated"),
    ]
    assert rows[0].month == dt.date(2019, 3, 1)


def test_force_offences_in_british_national_grid(engine: Engine) -> None:
    report = ingest_file(engine, CORPUS / "offences" / "bng.csv", ForceOffences(), force_code="E23000014")
    assert rejects(engine, report) == {3: "zero_coordinates"}


def test_offences_need_location_columns(engine: Engine) -> None:
    with pytest.raises(
        DataFileError, match=r"needs the columns \(latitude, longitude\) or \(easting, northing\)"
    ):
        ingest_file(
            engine, CORPUS / "offences" / "no_location_columns.csv", ForceOffences(), force_code=HAMPSHIRE
        )


def test_calls_cases(engine: Engine) -> None:
    report = ingest_file(engine, CORPUS / "calls" / "cases.csv", CallsForService())
    assert rejects(engine, report) == {
        4: "not_pseudonymised",
        5: "unknown_category",
        6: "unknown_category",
        7: "bad_date",
        9: "duplicate_id",
        10: "bad_value",
    }
    with engine.connect() as conn:
        rows = {
            r.line: r
            for r in conn.execute(
                text("SELECT * FROM calls WHERE batch_id = :b ORDER BY line"), {"b": report.batch_id}
            )
            .mappings()
            .all()
        }
        batch_synthetic = conn.execute(
            text("SELECT synthetic FROM ingest_batches WHERE id = :b"), {"b": report.batch_id}
        ).scalar_one()
    assert sorted(rows) == [2, 3, 8, 11]
    assert all(r["synthetic"] for r in rows.values()) and batch_synthetic is True
    assert rows[3]["location_source"] == "lsoa_code" and rows[3]["lsoa21_code"] == "E01017022"
    # A time with no offset is UK local: 00:30 BST on 1 June is 23:30 UTC on 31 May, month June.
    assert rows[8]["received_at"] == dt.datetime(2019, 5, 31, 23, 30, tzinfo=dt.UTC)
    assert rows[8]["month"] == dt.date(2019, 6, 1)
    assert rows[11]["caller_ref"] is None


def test_reference_layers_load_and_add_up(engine: Engine) -> None:
    reports = [
        ingest_file(
            engine, REFERENCE / "imd2019_lsoa11_ranks_deciles_hampshire_westmidlands.csv", ImdRanks()
        ),
        ingest_file(
            engine, REFERENCE / "imd2019_lsoa11_subdomains_hampshire_westmidlands.csv", ImdSubdomains()
        ),
        ingest_file(
            engine,
            REFERENCE / "ts021_ethnic_group_broad_lsoa21_hampshire_westmidlands.csv",
            CensusEthnicityLsoa(),
        ),
        ingest_file(engine, REFERENCE / "ethnic_group_detailed_lad21_EW_long.csv", CensusEthnicityLad()),
    ]
    assert [(r.data_rows, r.rejected) for r in reports] == [(2874, 0), (2874, 0), (2950, 0), (12578, 0)]
    with engine.connect() as conn:
        measures = conn.execute(text("SELECT count(DISTINCT measure), count(*) FROM imd2019_lsoa11")).one()
        residents = dict(
            conn.execute(
                text(
                    "SELECT a.force_code, sum(c.residents) FROM census2021_ethnicity c "
                    "JOIN areas a ON a.level = 'lsoa21' AND a.code = c.area_code "
                    "WHERE c.area_level = 'lsoa21' GROUP BY 1"
                )
            ).all()
        )
        lad_rows = conn.execute(
            text("SELECT count(*) FROM census2021_ethnicity WHERE area_level = 'local_authority'")
        ).scalar_one()
    assert tuple(measures) == (14, 14 * 2874)
    # SOURCES.md: Hampshire 1,998,232 and West Midlands 2,919,639 usual residents.
    assert residents == {"E23000030": 1_998_232, "E23000014": 2_919_639}
    assert lad_rows == 331 * 19
    # Loading the same file again is a no-op; reloading a source replaces its layer, never doubles it.
    again = ingest_file(
        engine, REFERENCE / "imd2019_lsoa11_ranks_deciles_hampshire_westmidlands.csv", ImdRanks()
    )
    assert again.status == "already loaded"


def test_census_rows_that_do_not_add_up_are_rejected(engine: Engine, tmp_path: Path) -> None:
    source = (
        (REFERENCE / "ts021_ethnic_group_broad_lsoa21_hampshire_westmidlands.csv").read_text().splitlines()
    )
    header, first, second = source[0], source[1], source[2]
    broken = second.rsplit(",", 1)[0] + ",99999.0"
    path = tmp_path / "census.csv"
    path.write_text("\n".join([header, first, broken]) + "\n")
    report = ingest_file(engine, path, CensusEthnicityLsoa())
    assert rejects(engine, report) == {3: "inconsistent"}


def test_generated_calls_are_realistic_and_marked_synthetic(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "calls-SYNTHETIC.csv"
    with engine.connect() as conn:
        rows = generate_calls(conn, HAMPSHIRE, month_range("2019-01", "2019-02"), path, seed=11)
    # About 40 calls per 1,000 residents a month: Hampshire's 2.0 million residents make ~80,000.
    assert 120_000 < rows < 200_000
    report = ingest_file(engine, path, CallsForService(), force_code=HAMPSHIRE)
    assert report.rejected == 0 and report.accepted == rows
    with engine.connect() as conn:
        per_caller = (
            conn.execute(
                text(
                    "SELECT count(*) AS n FROM calls WHERE batch_id = :b AND caller_ref IS NOT NULL "
                    "GROUP BY caller_ref ORDER BY n DESC"
                ),
                {"b": report.batch_id},
            )
            .scalars()
            .all()
        )
        synthetic = conn.execute(
            text("SELECT bool_and(synthetic) FROM calls WHERE batch_id = :b"), {"b": report.batch_id}
        ).scalar_one()
        channels = dict(
            conn.execute(
                text("SELECT channel, count(*) FROM calls WHERE batch_id = :b GROUP BY 1"),
                {"b": report.batch_id},
            ).all()
        )
    assert synthetic is True
    # A few persistent callers make many calls; almost everyone else calls once or twice.
    assert sum(n >= 50 for n in per_caller) == 3
    assert np.mean(np.array(per_caller) <= 2) > 0.99
    assert channels["101"] > channels["999"] > channels["online"]


def test_generator_is_seeded(engine: Engine, tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    with engine.connect() as conn:
        generate_calls(conn, "E23000014", month_range("2020-04", "2020-04"), a, seed=5)
        generate_calls(conn, "E23000014", month_range("2020-04", "2020-04"), b, seed=5)
    assert a.read_bytes() == b.read_bytes()


def test_quality_report_rates_every_source(engine: Engine) -> None:
    ingest_file(
        engine,
        REFERENCE.parent / "police_uk" / "street" / "hampshire" / "2018-12-hampshire-street.csv",
        __import__("ingest.police_uk", fromlist=["PoliceUkStreet"]).PoliceUkStreet(),
    )
    with engine.connect() as conn:
        lines = quality_report(conn, HAMPSHIRE)
    street = {q.check: q for q in lines if q.source == "police_uk_street"}
    assert street["months covered of the baseline"].rating == "Red"
    assert street["months covered of the baseline"].detail.startswith("1 of 60 months")
    assert street["rows rejected"].rating == "Green"
    assert 0.02 < (street["police.uk LSOA differs from point-in-polygon"].value or 0) < 0.06
    offences = [q for q in lines if q.source == "force_offences"]
    assert [(q.check, q.rating) for q in offences] == [("months covered of the baseline", "Red")]


@pytest.mark.parametrize(
    ("value", "expected"), [(0.0, "Green"), (0.05, "Green"), (0.07, "Amber"), (0.2, "Red")]
)
def test_rating_thresholds(value: float, expected: str) -> None:
    assert rate(value, 0.05, 0.10) == expected
