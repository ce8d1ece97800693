"""Ingest: the malformed-input corpus, every real sample, re-loads and a kill mid-load."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h3
import numpy as np
import pyarrow as pa
import pytest
from sqlalchemy import Engine, text

from harmmap.errors import DataFileError
from harmmap.settings import REPO_ROOT, Settings
from ingest.aggregate import fold_recent
from ingest.batch import IngestReport, ingest_file
from ingest.police_uk import PoliceUkStreet, crime_keys
from ingest.replicate import replicate_police_uk
from ingest.stop_search import PoliceUkStopSearch

CORPUS = REPO_ROOT / "tests" / "corpus"
DATA = REPO_ROOT / "data" / "police_uk"
STREET = PoliceUkStreet()
STOP_SEARCH = PoliceUkStopSearch()


pytestmark = pytest.mark.usefixtures("fresh_batches")


def rejects_by_line(engine: Engine, report: IngestReport) -> dict[int, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT line, kind FROM ingest_rejects WHERE batch_id = :b ORDER BY line"),
            {"b": report.batch_id},
        ).all()
    return dict(rows)


def assert_adds_up(engine: Engine, report: IngestReport) -> None:
    assert report.accepted + report.rejected == report.data_rows
    with engine.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT data_rows, accepted, rejected, "
                "(SELECT count(*) FROM ingest_rejects WHERE batch_id = b.id) AS reject_rows "
                "FROM ingest_batches b WHERE id = :b"
            ),
            {"b": report.batch_id},
        ).one()
    assert (stored.data_rows, stored.accepted, stored.rejected) == (
        report.data_rows,
        report.accepted,
        report.rejected,
    )
    assert stored.reject_rows == report.rejected


def street_rows(engine: Engine, report: IngestReport) -> dict[int, dict[str, object]]:
    with engine.connect() as conn:
        rows = (
            conn.execute(
                text("SELECT * FROM crime_records WHERE batch_id = :b ORDER BY line"), {"b": report.batch_id}
            )
            .mappings()
            .all()
        )
    return {int(r["line"]): dict(r) for r in rows}


def test_bom_crlf_blank_lines_and_quoted_values(engine: Engine) -> None:
    report = ingest_file(engine, CORPUS / "police_uk" / "layout_bom_blank_quoted.csv", STREET)
    assert_adds_up(engine, report)
    assert (report.accepted, report.rejected, report.blank_lines) == (4, 0, 3)
    rows = street_rows(engine, report)
    assert sorted(rows) == [2, 4, 6, 8]
    assert rows[4]["location_text"] == 'On or near "The Parade", Southsea'
    assert rows[6]["context"] == "first line\nsecond line"
    assert str(rows[2]["crime_id"]).startswith(
        ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f")
    )


def test_bad_utf8_and_ragged_rows_are_rejected_by_line(engine: Engine) -> None:
    report = ingest_file(engine, CORPUS / "police_uk" / "encoding_and_ragged.csv", STREET)
    assert_adds_up(engine, report)
    assert rejects_by_line(engine, report) == {3: "malformed_row", 4: "malformed_row", 6: "invalid_utf8"}
    assert sorted(street_rows(engine, report)) == [2, 5, 7]
    with engine.connect() as conn:
        reasons = dict(
            conn.execute(
                text("SELECT line, reason || ' | ' || raw FROM ingest_rejects WHERE batch_id = :b"),
                {"b": report.batch_id},
            ).all()
        )
    assert reasons[3].startswith("has 13 field(s); the header has 12 | ")
    assert reasons[3].endswith(",extra")
    assert "caf\ufffd street" in reasons[6]


def test_coordinate_cases(engine: Engine) -> None:
    report = ingest_file(engine, CORPUS / "police_uk" / "coordinates.csv", STREET)
    assert_adds_up(engine, report)
    assert rejects_by_line(engine, report) == {
        2: "bad_coordinates",
        3: "bad_coordinates",
        4: "out_of_range",
        5: "zero_coordinates",
        6: "out_of_range",
        7: "outside_area",
        8: "bad_coordinates",
        10: "no_location",
        11: "outside_area",
        12: "bad_code",
    }
    rows = street_rows(engine, report)
    assert sorted(rows) == [9, 13]
    by_code, by_point = rows[9], rows[13]
    assert by_code["location_source"] == "lsoa_code"
    assert by_code["lon"] is None and by_code["h3_10"] is None
    assert by_code["lsoa11_code"] == by_code["lsoa11_reported"]
    assert by_code["ward_code"] and by_code["force_code"] == "E23000030"
    assert by_point["location_source"] == "point"
    for column in ("lsoa11_code", "lsoa21_code", "ward_code", "lad_code", "force_code", "h3_7", "h3_10"):
        assert by_point[column] is not None


def test_categories_and_months(engine: Engine) -> None:
    report = ingest_file(engine, CORPUS / "police_uk" / "categories_months.csv", STREET)
    assert_adds_up(engine, report)
    assert rejects_by_line(engine, report) == {
        2: "unknown_category",
        4: "bad_month",
        5: "bad_month",
        6: "bad_month",
        7: "bad_month",
    }
    rows = street_rows(engine, report)
    assert rows[3]["crime_type"] == "Burglary"
    assert (rows[8]["crime_type"], rows[8]["category_scheme"]) == ("Violent crime", "police_uk_2011_unmapped")


def test_duplicate_crime_ids_within_and_across_files(engine: Engine) -> None:
    first = ingest_file(engine, CORPUS / "police_uk" / "duplicates_a.csv", STREET)
    assert_adds_up(engine, first)
    assert rejects_by_line(engine, first) == {4: "duplicate_id"}
    assert sorted(street_rows(engine, first)) == [2, 3, 5, 6, 7]  # blank ASB IDs are never duplicates
    second = ingest_file(engine, CORPUS / "police_uk" / "duplicates_b.csv", STREET)
    assert rejects_by_line(engine, second) == {2: "duplicate_id"}
    with engine.connect() as conn:
        reason = conn.execute(
            text("SELECT reason FROM ingest_rejects WHERE batch_id = :b"), {"b": second.batch_id}
        ).scalar_one()
    assert reason == f"Crime ID already loaded: batch {first.batch_id}, line 3"


def test_each_batch_keeps_its_crime_id_keys_by_force_and_month(engine: Engine) -> None:
    """A later file is checked against the keys an earlier batch kept, or, for a batch stored before the
    keys were kept (keys NULL), against its rows in crimes; deleting a batch forgets its keys."""
    first = ingest_file(engine, CORPUS / "police_uk" / "duplicates_a.csv", STREET)
    with engine.connect() as conn:
        kept = conn.execute(
            text("SELECT force_code, month, crime_ids, keys FROM crime_batch_months WHERE batch_id = :b"),
            {"b": first.batch_id},
        ).one()
        ids = conn.execute(
            text("SELECT crime_id FROM crimes WHERE batch_id = :b AND crime_id IS NOT NULL"),
            {"b": first.batch_id},
        ).scalars()
        expected = np.sort(crime_keys(pa.array(list(ids))))
    assert (kept.force_code, str(kept.month), kept.crime_ids) == ("E23000030", "2018-12-01", 3)  # Hampshire
    assert list(np.frombuffer(kept.keys, dtype="<i8")) == list(expected)

    with engine.begin() as conn:
        conn.execute(
            text("UPDATE crime_batch_months SET keys = NULL WHERE batch_id = :b"), {"b": first.batch_id}
        )
    second = ingest_file(engine, CORPUS / "police_uk" / "duplicates_b.csv", STREET)
    assert rejects_by_line(engine, second) == {2: "duplicate_id"}

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM ingest_batches WHERE id = :b"), {"b": first.batch_id})
        left = conn.execute(text("SELECT DISTINCT batch_id FROM crime_batch_months")).scalars().all()
    assert left == [second.batch_id]


def test_legacy_2011_format(engine: Engine) -> None:
    report = ingest_file(engine, CORPUS / "police_uk" / "legacy_2011.csv", STREET)
    assert_adds_up(engine, report)
    assert rejects_by_line(engine, report) == {3: "zero_coordinates", 4: "out_of_range"}
    rows = street_rows(engine, report)
    assert rows[5]["category_scheme"] == "police_uk_2011_unmapped"
    assert (rows[6]["crime_type"], rows[6]["category_scheme"]) == ("Burglary", "police_uk_2011_mapped")
    assert rows[2]["force_code"] == "E23000014"
    assert -2.2 < float(rows[2]["lon"]) < -1.4  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        (
            "header_missing.csv",
            ["line 1: field 'Longitude': missing column", "field 'Latitude': missing column"],
        ),
        ("header_unexpected.csv", ["field 'Postcode': unexpected column"]),
    ],
)
def test_wrong_header_is_refused_before_anything_loads(
    engine: Engine, name: str, fragments: list[str]
) -> None:
    with engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM ingest_batches")).scalar_one()
    with pytest.raises(DataFileError) as caught:
        ingest_file(engine, CORPUS / "police_uk" / name, STREET)
    for fragment in fragments:
        assert fragment in str(caught.value)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ingest_batches")).scalar_one() == before


def test_stop_search_cases(engine: Engine) -> None:
    report = ingest_file(engine, CORPUS / "stop_search" / "cases.csv", STOP_SEARCH)
    assert_adds_up(engine, report)
    assert rejects_by_line(engine, report) == {
        3: "unknown_legislation",
        4: "unknown_category",
        5: "bad_date",
        6: "no_location",
        7: "unknown_category",
        10: "bad_value",
        11: "bad_month",
    }
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT line, search_type, self_defined_group FROM stop_searches "
                "WHERE batch_id = :b ORDER BY line"
            ),
            {"b": report.batch_id},
        ).all()
    assert [r.line for r in rows] == [2, 8, 9]
    assert rows[1].self_defined_group == "Not stated"
    assert (rows[2].search_type, rows[2].self_defined_group) == ("Vehicle search", "Not stated")
    assert report.notes["vehicle_only"] == 1


@pytest.mark.parametrize("stage", ["check", "finish"])
def test_an_error_in_any_stage_leaves_no_batch_and_no_thread(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    """A load runs on several threads; an error in one, mid-file, still rolls the whole batch back,
    and every stage's thread is gone when ingest_file returns."""
    import threading

    monkeypatch.setattr("ingest.csvread.BLOCK_BYTES", 64 << 10)  # the sample file is then a dozen blocks
    calls = {"n": 0}
    real = getattr(PoliceUkStreet, stage)

    def failing(self: PoliceUkStreet, *args: object) -> object:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError(f"{stage} failed on the third block")
        return real(self, *args)

    monkeypatch.setattr(PoliceUkStreet, stage, failing)
    with engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM ingest_batches")).scalar_one()
    with pytest.raises(RuntimeError, match="third block"):
        ingest_file(engine, DATA / "street" / "hampshire" / "2018-12-hampshire-street.csv", STREET)
    with engine.connect() as conn:
        after = conn.execute(text("SELECT count(*) FROM ingest_batches")).scalar_one()
        partitions = conn.execute(text(RECENT_PARTITIONS)).scalar_one()
    assert (after, partitions) == (before, 0)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("harmmap-")]


def test_reloading_a_file_is_a_no_op(engine: Engine) -> None:
    path = DATA / "street" / "hampshire" / "2018-12-hampshire-street.csv"
    first = ingest_file(engine, path, STREET)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT count(*) FROM crimes")).scalar_one()
    again = ingest_file(engine, path, STREET)
    assert again.status == "already loaded"
    assert (again.batch_id, again.accepted, again.rejected) == (
        first.batch_id,
        first.accepted,
        first.rejected,
    )
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM crimes")).scalar_one() == rows
        assert (
            conn.execute(
                text(
                    "SELECT count(*) FROM ingest_batches WHERE sha256 = "
                    "(SELECT sha256 FROM ingest_batches WHERE id = :b)"
                ),
                {"b": first.batch_id},
            ).scalar_one()
            == 1
        )


def test_the_checksum_is_recorded_and_a_same_size_file_is_still_new(engine: Engine, tmp_path: Path) -> None:
    """The checksum is read beside the load unless a batch of the source has the file's size; either way
    the batch records the file's real SHA-256, and only identical content is a no-op."""
    path = DATA / "street" / "hampshire" / "2018-12-hampshire-street.csv"
    first = ingest_file(engine, path, STREET)
    twin = tmp_path / "twin.csv"  # the same size, one byte different: another month's file, say
    body = path.read_bytes()
    at = body.rindex(b"Under investigation")
    twin.write_bytes(body[:at] + b"under investigation" + body[at + len(b"Under investigation") :])
    second = ingest_file(engine, twin, STREET)
    assert second.status == "loaded" and second.batch_id != first.batch_id
    with engine.connect() as conn:
        recorded = dict(
            conn.execute(
                text("SELECT id, sha256 FROM ingest_batches WHERE id IN (:a, :b)"),
                {"a": first.batch_id, "b": second.batch_id},
            ).all()
        )
    assert recorded == {
        first.batch_id: hashlib.sha256(path.read_bytes()).hexdigest(),
        second.batch_id: hashlib.sha256(twin.read_bytes()).hexdigest(),
    }


EXPECTED_REAL = {
    # file: (data rows, accepted); every rejected row is outside the loaded areas or has no location.
    "street/hampshire/2017-02-hampshire-street.csv": (14_834, None),
    "street/hampshire/2018-12-hampshire-street.csv": (12_396, 12_372),
    "street/west-midlands/2011-02-west-midlands-street.csv": (25_558, 25_542),
    "stop_and_search/hampshire/2018-11-hampshire-stop-and-search.csv": (710, 628),
    "stop_and_search/west-midlands/2019-06-west-midlands-stop-and-search.csv": (1_894, 1_894),
}


def test_every_real_sample_loads_and_adds_up(engine: Engine) -> None:
    files = sorted(DATA.rglob("*.csv"))
    assert len(files) == 12
    for path in files:
        source = STOP_SEARCH if "stop-and-search" in path.name else STREET
        report = ingest_file(engine, path, source)
        assert_adds_up(engine, report)
        assert report.status == "loaded"
        assert set(report.rejected_by_kind) <= {"outside_area", "no_location"}, (
            path.name,
            report.rejected_by_kind,
        )
        key = str(path.relative_to(DATA))
        if key in EXPECTED_REAL:
            rows, accepted = EXPECTED_REAL[key]
            assert report.data_rows == rows
            if accepted is not None:
                assert report.accepted == accepted
    with engine.connect() as conn:
        share = conn.execute(
            text("SELECT avg(lsoa_disagrees::int) FROM crime_records WHERE lsoa_disagrees IS NOT NULL")
        ).scalar_one()
    # SOURCES.md measured 95.3% agreement between police.uk's LSOA and point-in-polygon.
    assert 0.02 < float(share) < 0.08


def test_crime_records_work_out_what_crimes_does_not_store(engine: Engine) -> None:
    """crimes keeps h3_10 and the point; the view's parents, location_source and LSOA check follow."""
    path = DATA / "street" / "hampshire" / "2018-12-hampshire-street.csv"
    report = ingest_file(engine, path, STREET)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT h3_7, h3_8, h3_9, h3_10, location_source, lon, lsoa_disagrees, lsoa11_reported, "
                "lsoa11_code FROM crime_records WHERE batch_id = :b"
            ),
            {"b": report.batch_id},
        ).all()
    assert len(rows) == report.accepted
    located = [r for r in rows if r.h3_10 is not None]
    assert located and all(r.location_source == "point" for r in located)
    for r in located[:2000]:
        cell = h3.int_to_str(r.h3_10)
        for resolution, parent in ((7, r.h3_7), (8, r.h3_8), (9, r.h3_9)):
            assert h3.int_to_str(parent) == h3.cell_to_parent(cell, resolution)
    assert all((r.location_source == "lsoa_code") == (r.lon is None) for r in rows)
    compared = [r for r in rows if r.lsoa_disagrees is not None]
    assert sum(r.lsoa_disagrees for r in compared) == report.notes["lsoa_disagreements"]
    assert len(compared) == report.notes["lsoa_compared"]
    assert all(r.lsoa_disagrees == (r.lsoa11_reported != r.lsoa11_code) for r in compared)


def test_a_killed_load_leaves_no_partial_batch(engine: Engine, settings: Settings, tmp_path: Path) -> None:
    big = tmp_path / "big-street.csv"
    replicate_police_uk(
        [DATA / "street" / "hampshire" / "2018-12-hampshire-street.csv"], big, rows=300_000, seed=7
    )
    env = {**os.environ, "HARMMAP_DATABASE_URL": settings.database_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "harmmap.cli", "ingest", "police-uk", str(big)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        copying = False
        while time.monotonic() < deadline and proc.poll() is None:
            with engine.connect() as conn:
                copying = bool(
                    conn.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY \"crimes\"%' "
                            "AND state = 'active' AND datname = current_database()"
                        )
                    ).scalar_one()
                )
            if copying:
                break
            time.sleep(0.05)
        assert copying, "the load never reached COPY"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    time.sleep(0.5)  # let the server notice the dead client and roll back
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM ingest_batches WHERE file_name = :f"), {"f": big.name}
            ).scalar_one()
            == 0
        )
        assert conn.execute(text("SELECT count(*) FROM crimes")).scalar_one() == 0
        # Nor a partition of harm counts: it is created in the load's transaction.
        assert conn.execute(text(RECENT_PARTITIONS)).scalar_one() == 0
    report = ingest_file(engine, big, STREET)
    assert report.status == "loaded"
    assert_adds_up(engine, report)


RECENT_PARTITIONS = "SELECT count(*) FROM pg_class WHERE relname ~ '^harm_recent_[0-9]+$'"


def test_the_cli_folds_after_loading_unless_told_not_to(
    engine: Engine, settings: Settings, fresh_batches: None, tmp_path: Path
) -> None:
    env = {**os.environ, "HARMMAP_DATABASE_URL": settings.database_url}
    path = tmp_path / "fold-street.csv"
    replicate_police_uk(
        [DATA / "street" / "hampshire" / "2018-12-hampshire-street.csv"], path, rows=5_000, seed=11
    )

    def harmmap(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "harmmap.cli", *args], env=env, capture_output=True, text=True, check=True
        )
        return done.stderr

    def place() -> tuple[bool, bool]:
        """Whether this file's batch is recent, and whether it is folded."""
        with engine.connect() as conn:
            recent, folded = conn.execute(
                text(
                    "SELECT EXISTS (SELECT 1 FROM harm_recent_batches r JOIN ingest_batches b "
                    "ON b.id = r.batch_id WHERE b.file_name = :f), "
                    "EXISTS (SELECT 1 FROM harm_counts h JOIN ingest_batches b ON b.id = h.batch_id "
                    "WHERE b.file_name = :f)"
                ),
                {"f": path.name},
            ).one()
        return bool(recent), bool(folded)

    fold_recent(engine)
    harmmap("ingest", "police-uk", "--no-fold", str(path))
    assert place() == (True, False)
    assert "folded 1 batch(es)" in harmmap("db", "fold")
    assert place() == (False, True)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM ingest_batches WHERE file_name = :f"), {"f": path.name})
    assert place() == (False, False)
    assert "folded 1 batch(es)" in harmmap("ingest", "police-uk", str(path))
    assert place() == (False, True)
    with engine.connect() as conn:
        assert conn.execute(text(RECENT_PARTITIONS)).scalar_one() == 0


def test_crime_keys_are_the_first_16_hex_digits_or_else_a_hash() -> None:
    """The duplicate check's 64-bit keys: police.uk IDs (SHA-256 hex) by their first 16 digits, anything
    else (short, non-hex, non-ASCII) by BLAKE2b, so the two kinds never need a regex to tell apart."""
    hexadecimal = "fe0123456789abcdef" + "0" * 46
    others = ["", "abc", "0123456789abcdeG0000", "0123456789abcdé12345", "é" * 20, "x" * 40]
    keys = crime_keys(pa.array([hexadecimal, "0123456789ABCDEF", *others]))
    assert keys[0] == np.array([int(hexadecimal[:16], 16)], dtype=np.uint64).view(np.int64)[0]
    assert keys[1] == int("0123456789ABCDEF", 16)
    for key, other in zip(keys[2:], others, strict=True):
        digest = hashlib.blake2b(other.encode(), digest_size=8).digest()
        assert key == int.from_bytes(digest, "big", signed=True), other
    # Keys are read from the Arrow buffers: a slice (non-zero offset) and nulls give the same keys.
    with_nulls = pa.array(["x", None, hexadecimal, None, *others, "0123456789ABCDEF"])
    sliced = crime_keys(with_nulls.slice(2))
    assert sliced[0] == keys[0] and sliced[1] == 0 and list(sliced[-1:]) == [keys[1]]
    assert list(sliced[2:-1]) == list(keys[2:])
