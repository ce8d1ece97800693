"""``load boundaries``: idempotent, and a bad file names what is wrong and loads nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, text
from typer.testing import CliRunner

from geo.load import load_boundaries
from harmmap.cli import cli
from harmmap.errors import DataFileError
from harmmap.settings import REPO_ROOT

WARDS = REPO_ROOT / "data" / "boundaries" / "wards" / "wards_may2024_BSC_hampshire_westmidlands.geojson"
CRS84 = {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}
BNG = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::27700"}}


def fingerprint(conn: Connection) -> tuple[Any, ...]:
    """Row counts and row versions of every table the loader writes: equal means untouched."""
    areas = conn.execute(
        text("SELECT count(*), md5(string_agg(code || vintage || xmin::text, ',' ORDER BY id)) FROM areas")
    ).one()
    lookups = tuple(
        conn.execute(text(f"SELECT count(*), md5(string_agg(xmin::text, ',')) FROM {table}")).one()
        for table in ("lookup_lsoa11_lsoa21", "lookup_lsoa21_ward", "lookup_lad_force", "lookup_lsoa11_ward")
    )
    return (tuple(areas), lookups)


def real_wards(n: int = 3) -> list[dict[str, Any]]:
    features: list[dict[str, Any]] = json.loads(WARDS.read_text())["features"][:n]
    return features


def write_ward_layer(
    tmp_path: Path,
    features: list[dict[str, Any]],
    crs: dict[str, Any] | None = CRS84,
    code_field: str = "ward_code",
) -> Path:
    doc: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if crs is not None:
        doc["crs"] = crs
    (tmp_path / "wards.geojson").write_text(json.dumps(doc))
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(
        f"""
[[layer]]
file = "wards.geojson"
level = "ward"
vintage = "WDTEST"
code_field = "{code_field}"
name_field = "ward_name"
parents = {{ force = "pfa24_code", local_authority = "lad_code" }}
source = "test"
"""
    )
    return manifest


def test_second_load_changes_nothing(conn: Connection, manifest_path: Path) -> None:
    before = fingerprint(conn)
    report = load_boundaries(conn, manifest_path)
    assert report.changed == 0
    assert all(layer.unchanged == layer.features for layer in report.layers)
    assert all(lk.unchanged + lk.duplicates_collapsed == lk.rows_read for lk in report.lookups)
    assert fingerprint(conn) == before


def test_load_report_accounts_for_every_row(conn: Connection, manifest_path: Path) -> None:
    report = load_boundaries(conn, manifest_path)
    by_table = {lk.table: lk for lk in report.lookups}
    # 332 LAD->CSP->PFA rows: 318 LADs, 14 repeats of a LAD under another CSP with the same force.
    lad = by_table["lookup_lad_force"]
    assert (lad.rows_read, lad.duplicates_collapsed, lad.unchanged) == (332, 14, 318)
    lsoa11 = next(layer for layer in report.layers if layer.level == "lsoa11")
    assert lsoa11.repaired == 6


def test_a_good_new_layer_loads_and_repairs_a_bow_tie(conn: Connection, tmp_path: Path) -> None:
    features = real_wards(2)
    # A bow-tie ring (self-intersecting) is repairable: ST_MakeValid turns it into two triangles.
    x, y = (
        features[1]["geometry"]["coordinates"][0][0][0]
        if features[1]["geometry"]["type"] == "MultiPolygon"
        else features[1]["geometry"]["coordinates"][0][0]
    )
    features[1]["geometry"] = {
        "type": "Polygon",
        "coordinates": [[[x, y], [x + 0.01, y + 0.01], [x + 0.01, y], [x, y + 0.01], [x, y]]],
    }
    report = load_boundaries(conn, write_ward_layer(tmp_path, features))
    (layer,) = report.layers
    assert (layer.features, layer.inserted, layer.repaired) == (2, 2, 1)
    repaired = conn.execute(
        text("SELECT geom_repaired, ST_NumGeometries(geom) FROM areas WHERE vintage = 'WDTEST' ORDER BY code")
    ).all()
    assert sorted(repaired) == [(False, 1), (True, 2)]


def expect_refusal(conn: Connection, manifest: Path, *fragments: str) -> DataFileError:
    before = fingerprint(conn)
    with pytest.raises(DataFileError) as caught:
        load_boundaries(conn, manifest)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert "nothing loaded" in message
    assert fingerprint(conn) == before, "a refused load must leave every table unchanged"
    return caught.value


def test_missing_code_column(conn: Connection, tmp_path: Path) -> None:
    manifest = write_ward_layer(tmp_path, real_wards(), code_field="WD24CD")
    err = expect_refusal(conn, manifest, "wards.geojson", "'WD24CD'", "missing code column")
    assert err.problems[0].field == "WD24CD"


def test_undeclared_crs(conn: Connection, tmp_path: Path) -> None:
    manifest = write_ward_layer(tmp_path, real_wards(), crs=None)
    err = expect_refusal(conn, manifest, "wards.geojson", "field 'crs'", "no CRS is declared")
    assert err.problems[0].field == "crs"


def test_declared_crs_contradicted_by_coordinates(conn: Connection, tmp_path: Path) -> None:
    # Lon/lat coordinates in a file that says it is British National Grid.
    manifest = write_ward_layer(tmp_path, real_wards(), crs=BNG)
    err = expect_refusal(
        conn, manifest, "wards.geojson", "feature 1 (E05001218)", "field 'crs'", "looks wrong"
    )
    assert len(err.problems) == 3


def test_unsupported_crs(conn: Connection, tmp_path: Path) -> None:
    mercator = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3857"}}
    expect_refusal(
        conn, write_ward_layer(tmp_path, real_wards(), crs=mercator), "EPSG::3857", "not supported"
    )


def test_unrepairable_geometry(conn: Connection, tmp_path: Path) -> None:
    features = real_wards()
    # A ring along one meridian has no area: ST_MakeValid leaves lines, not a polygon.
    features[2]["geometry"] = {
        "type": "Polygon",
        "coordinates": [[[-1.0, 52.0], [-1.0, 52.5], [-1.0, 53.0], [-1.0, 52.0]]],
    }
    code = features[2]["properties"]["ward_code"]
    err = expect_refusal(
        conn,
        write_ward_layer(tmp_path, features),
        f"feature 3 ({code})",
        "field 'geometry'",
        "ST_MakeValid cannot repair it",
    )
    assert [p.where for p in err.problems] == [f"feature 3 ({code})"]


def test_ring_too_short_to_build(conn: Connection, tmp_path: Path) -> None:
    features = real_wards()
    features[1]["geometry"] = {"type": "Polygon", "coordinates": [[[-1.5, 52.4], [-1.4, 52.5], [-1.5, 52.4]]]}
    expect_refusal(
        conn,
        write_ward_layer(tmp_path, features),
        "feature 2 (E05001219): field 'geometry': has a ring of 3 points",
    )


def test_non_polygon_and_missing_geometry(conn: Connection, tmp_path: Path) -> None:
    features = real_wards()
    features[0]["geometry"] = {"type": "Point", "coordinates": [-1.5, 52.4]}
    features[1]["geometry"] = None
    expect_refusal(
        conn,
        write_ward_layer(tmp_path, features),
        "feature 1 (E05001218): field 'geometry': is a Point, not a polygon",
        "feature 2 (E05001219): field 'geometry': has no geometry",
    )


def test_duplicate_codes(conn: Connection, tmp_path: Path) -> None:
    features = real_wards()
    features[2]["properties"]["ward_code"] = features[0]["properties"]["ward_code"]
    expect_refusal(
        conn,
        write_ward_layer(tmp_path, features),
        "feature 3 (E05001218)",
        "field 'ward_code'",
        "duplicate code E05001218, first seen at feature 1",
    )


def test_malformed_code(conn: Connection, tmp_path: Path) -> None:
    features = real_wards()
    features[0]["properties"]["ward_code"] = "X05001218"
    features[1]["properties"]["pfa24_code"] = ""
    err = expect_refusal(
        conn,
        write_ward_layer(tmp_path, features),
        "feature 1 (X05001218): field 'ward_code': 'X05001218' is not a ward GSS code",
        "feature 2 (E05001219): field 'pfa24_code': '' is not a force GSS code",
    )
    assert [p.field for p in err.problems] == ["ward_code", "pfa24_code"]


def test_parent_that_is_not_loaded(conn: Connection, tmp_path: Path) -> None:
    features = real_wards()
    features[1]["properties"]["lad_code"] = "E08000999"
    err = expect_refusal(
        conn,
        write_ward_layer(tmp_path, features),
        "feature 2 (E05001219): field 'lad_code': local_authority E08000999 is not loaded",
    )
    assert len(err.problems) == 1


def test_one_bad_file_stops_every_file(conn: Connection, tmp_path: Path, manifest_path: Path) -> None:
    """A manifest of good files plus one bad one writes none of them."""
    bad = real_wards()
    bad[1]["properties"]["ward_code"] = bad[0]["properties"]["ward_code"]
    write_ward_layer(tmp_path, bad)
    combined = tmp_path / "combined.toml"
    shipped = manifest_path.read_text().replace('file = "', f'file = "{manifest_path.parent}/')
    extra = (tmp_path / "manifest.toml").read_text().replace('file = "', f'file = "{tmp_path}/')
    combined.write_text(shipped + extra)
    conn.execute(text("DELETE FROM lookup_lad_force"))  # the good files would restore these rows
    expect_refusal(conn, combined, "duplicate code")
    assert conn.execute(text("SELECT count(*) FROM lookup_lad_force")).scalar_one() == 0


def test_bad_lookup_rows_are_named_by_line(conn: Connection, tmp_path: Path) -> None:
    (tmp_path / "lad.csv").write_text(
        "ltla24_code,pfa24_code\nE06000044,E23000030\nE06000044,E23000014\nE0600004X,E23000030\n"
    )
    (tmp_path / "m.toml").write_text(
        """
[[layer]]
file = "wards.geojson"
level = "ward"
vintage = "WDTEST"
code_field = "ward_code"
name_field = "ward_name"
source = "test"

[[lookup]]
kind = "lad_force"
file = "lad.csv"
columns = { lad_code = "ltla24_code", force_code = "pfa24_code" }
source = "test"
"""
    )
    write_ward_layer(tmp_path, real_wards())
    expect_refusal(
        conn,
        tmp_path / "m.toml",
        "lad.csv: line 3: field 'ltla24_code': E06000044 maps differently at line 2: "
        "force_code E23000030 vs E23000014",
        "lad.csv: line 4: field 'ltla24_code': 'E0600004X' is not a local_authority GSS code",
    )


def test_bad_manifest_entries_are_named(conn: Connection, tmp_path: Path) -> None:
    (tmp_path / "m.toml").write_text('[[layer]]\nfile = "x.geojson"\nlevel = "county"\n')
    err = expect_refusal(conn, tmp_path / "m.toml", "[[layer]] #1", "'county' is not one of")
    assert {p.field for p in err.problems} >= {"level", "vintage", "code_field", "name_field", "source"}


def test_cli_reports_a_bad_file_and_exits_nonzero(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARMMAP_DATABASE_URL", settings.database_url)
    manifest = write_ward_layer(tmp_path, real_wards(), crs=None)
    result = CliRunner().invoke(cli, ["load", "boundaries", "--manifest", str(manifest)])
    assert result.exit_code == 1
    assert "no CRS is declared" in result.output
