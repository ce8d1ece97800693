"""Map layers, class breaks, print-ready maps and data downloads (domain and HTTP)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from PIL import Image
from sqlalchemy import Engine
from typer.testing import CliRunner

from harm_index import classes as classing
from harm_index.demand import PersistentRule
from harm_index.disclosure import Disclosure
from harm_index.maplayers import LAYERS, LayerQuery, compare, layer_values
from harm_index.periods import Period
from harm_index.scores import area_harm
from harm_index.trauma import TraumaConfig
from harm_index.weights import Scheme
from harmmap.cli import cli
from harmmap.errors import InvalidParameterError
from harmmap.settings import Settings

HAMPSHIRE = "E23000030"
DECEMBER = Period(dt.date(2018, 12, 1), dt.date(2018, 12, 1), "2018-12")
WINTER = "2018-12..2019-03"
ATTRIBUTION = "Open Government Licence"


def query(scheme: Scheme, layer: str = "harm_rate", level: str = "ward", **kw: Any) -> LayerQuery:
    base = LayerQuery(
        layer=layer,
        force_code=HAMPSHIRE,
        level=level,
        period=DECEMBER,
        baseline=DECEMBER,
        scheme=scheme,
        disclosure=Disclosure(4),
        trauma=TraumaConfig({"harm": 0.35, "calls": 0.20, "police_powers": 0.20, "deprivation": 0.25}),
        rule=PersistentRule(10, 30),
    )
    return dataclasses.replace(base, **kw)


# --- class breaks ----------------------------------------------------------------------------------


def test_quantile_breaks_hand_computed() -> None:
    classes = classing.classify([float(v) for v in range(1, 11)], "quantiles", 5)
    # Linear-interpolated quintiles of 1..10: 1 + 9q for q = 0.2, 0.4, ..., 1.
    assert classes.bins == pytest.approx([2.8, 4.6, 6.4, 8.2, 10.0])
    assert classes.counts == [2, 2, 2, 2, 2]
    assert classes.labels == ["1.00 - 2.80", "2.80 - 4.60", "4.60 - 6.40", "6.40 - 8.20", "8.20 - 10.0"]
    assert [classes.assign(v) for v in (1.0, 2.8, 3.0, 10.0, None)] == [0, 0, 1, 4, None]
    assert len(classes.colours) == 5


def test_natural_breaks_separate_clusters() -> None:
    classes = classing.classify([1.0, 1.1, 1.2, 10.0, 10.5, 100.0], "natural_breaks", 3)
    assert classes.bins == [1.2, 10.5, 100.0]
    assert classes.counts == [3, 2, 1]


def test_natural_breaks_of_many_areas_are_quick_and_end_at_the_maximum() -> None:
    values = list(np.random.default_rng(3).lognormal(6, 1, 20_000))
    classes = classing.classify(values, "natural_breaks", 7)
    assert classes.bins[-1] == max(values)
    assert sum(classes.counts) == len(values)


def test_fewer_distinct_values_than_classes_gives_fewer_classes() -> None:
    classes = classing.classify([5.0, 5.0, 7.0, None], "quantiles", 5)
    assert classes.bins == [5.0, 7.0]
    assert classes.counts == [2, 1]


def test_fixed_classes_keep_their_breaks_and_neutral_middle() -> None:
    classes = classing.fixed([1.0, 1.02, 0.5], (0.67, 0.9, 1.1, 1.5), scale="diverging")
    assert len(classes.colours) == len(classes.labels) == 5
    assert classes.labels[-1] == "> 1.50"
    assert classes.colours[2] == "#f7f7f7"  # no change is the neutral colour
    assert classes.counts == [1, 0, 2, 0, 0]
    deciles = classing.fixed(
        [1.0, 3.4, 10.0], tuple(float(d) for d in range(1, 11)), scale="sequential", method="deciles"
    )
    assert deciles.labels == [str(d) for d in range(1, 11)]
    assert deciles.assign(3.4) == 3


@pytest.mark.parametrize(("method", "k", "parameter"), [("jenks", 5, "classes"), ("quantiles", 9, "k")])
def test_bad_classing_names_the_parameter(method: str, k: int, parameter: str) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        classing.classify([1.0, 2.0], method, k)
    assert caught.value.parameter == parameter


# --- layers ----------------------------------------------------------------------------------------


def test_harm_layer_is_the_harm_rate_with_disclosure(engine: Engine, layers: Scheme) -> None:
    with engine.connect() as conn:
        values = layer_values(conn, query(layers))
        harm = {
            a.code: a
            for a in area_harm(conn, level="ward", force_code=HAMPSHIRE, period=DECEMBER, scheme=layers).areas
        }
    assert len(values.areas) == len(harm) > 200
    withheld = 0
    for area in values.areas:
        source = harm[area.code]
        if 0 < source.incidents <= 4:
            withheld += 1
            assert area.value is None and "incidents" in area.withheld
        else:
            assert area.value == source.harm_rate
            if source.harm_rate_interval:
                assert (area.low, area.high) == source.harm_rate_interval
    assert withheld > 0
    with_value = [a for a in values.areas if a.value is not None]
    assert sum(values.classes.counts) == len(with_value)
    assert all(a.class_index is not None for a in with_value)
    assert values.method["scheme"] == "ons-css" and values.method["population_source"]
    assert not values.restricted and not values.synthetic
    assert any("not where victims" in c for c in values.caveats)


@pytest.mark.parametrize(
    ("layer", "level"),
    [(spec.id, level) for spec in LAYERS.values() for level in spec.levels if level != "h3_9"],
)
def test_every_layer_at_every_level_gives_classed_values(
    engine: Engine, layers: Scheme, layer: str, level: str
) -> None:
    with engine.connect() as conn:
        values = layer_values(conn, query(layers, layer, level))
    assert values.areas, f"{layer} at {level} is empty"
    assert all(
        a.class_index is None or 0 <= a.class_index < len(values.classes.colours) for a in values.areas
    )
    assert any(a.class_index is not None for a in values.areas)
    assert len(values.classes.labels) == len(values.classes.colours)
    assert values.restricted == bool({"calls"} & set(LAYERS[layer].sources))
    assert values.synthetic == (layer in ("calls", "trauma"))


@pytest.mark.parametrize(
    ("changes", "parameter"),
    [
        ({"layer": "nope"}, "layer"),
        ({"level": "h3_8", "layer": "trauma"}, "level"),
        ({"layer": "stop_search", "group": "White"}, "group"),
        ({"method": "equal"}, "classes"),
    ],
)
def test_bad_layer_requests_name_the_parameter(
    engine: Engine, layers: Scheme, changes: dict[str, str], parameter: str
) -> None:
    with engine.connect() as conn, pytest.raises(InvalidParameterError) as caught:
        layer_values(conn, query(layers, **changes))
    assert caught.value.parameter == parameter


def test_compare_puts_periods_per_year_on_shared_classes(engine: Engine, layers: Scheme) -> None:
    december = query(layers)
    winter = dataclasses.replace(
        december, period=Period(DECEMBER.start, DECEMBER.start.replace(year=2019, month=3), "winter")
    )
    with engine.connect() as conn:
        one_month = {a.code: a.value for a in layer_values(conn, december).areas}
        before, after = compare(conn, december, winter)
    assert before.classes is after.classes
    for area in before.areas:
        if area.value is not None:
            assert area.value == pytest.approx(one_month[area.code] * 12)
    # Street crime is loaded for December only, so the four-month winter is a third of it per year.
    by_code = {a.code: a.value for a in after.areas}
    for area in before.areas[:20]:
        if area.value is not None and by_code.get(area.code) is not None:
            assert by_code[area.code] == pytest.approx(area.value / 4)


# --- print maps and downloads over HTTP ------------------------------------------------------------


@pytest.fixture(scope="module")
def lead(api_keys: dict[str, str]) -> dict[str, str]:
    """A lead's key: force-held layers (calls, trauma) of the pilot forces, with disclosure control."""
    return {"X-API-Key": api_keys["lead"]}


def _get(client: TestClient, path: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
    response = client.get(path, params={"force": HAMPSHIRE, "period": "2018-12", **params}, headers=headers)
    assert response.status_code == 200, response.text
    return response


def test_map_png_is_a4_landscape_at_300_dpi(client: TestClient, layers: Scheme, tmp_path: Path) -> None:
    response = _get(client, "/exports/map.png", layer="harm_rate")
    assert response.headers["content-type"] == "image/png"
    assert "attachment" in response.headers["content-disposition"]
    image = Image.open(io.BytesIO(response.content))
    assert abs(image.size[0] - 3507) <= 2 and abs(image.size[1] - 2481) <= 2
    assert image.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    # A drawn map, not a blank page: many coloured (non-grey) pixels.
    pixels = np.asarray(image.convert("RGB").resize((350, 248)), dtype=int)
    coloured = int(((pixels.max(axis=2) - pixels.min(axis=2)) > 40).sum())
    assert coloured > 5000


def _pdf_text(content: bytes, tmp_path: Path) -> str:
    pdf = tmp_path / "map.pdf"
    pdf.write_bytes(content)
    pdftoppm, pdftotext = shutil.which("pdftoppm"), shutil.which("pdftotext")
    assert pdftoppm and pdftotext, "poppler-utils is installed by scripts/bootstrap.sh"
    subprocess.run([pdftoppm, "-png", "-r", "50", str(pdf), str(tmp_path / "page")], check=True, timeout=120)
    pages = list(tmp_path.glob("page*.png"))
    assert len(pages) == 1
    assert Image.open(pages[0]).size[0] > Image.open(pages[0]).size[1]  # landscape
    text = subprocess.run([pdftotext, "-layout", str(pdf), "-"], check=True, capture_output=True, text=True)
    return " ".join(text.stdout.split())


def test_map_pdf_has_title_period_attribution_and_no_marking_for_open_data(
    client: TestClient, layers: Scheme, tmp_path: Path
) -> None:
    response = _get(client, "/exports/map.pdf", layer="harm_rate")
    text = _pdf_text(response.content, tmp_path)
    assert "Crime harm per 1,000 residents: Hampshire" in text
    assert "Dec 2018 (1 month)" in text
    assert ATTRIBUTION in text and "Crown copyright" in text
    assert "scheme ons-css" in text
    assert "OFFICIAL-SENSITIVE" not in text
    assert "X-Protective-Marking" not in response.headers


def test_restricted_layer_pdf_is_marked(
    client: TestClient, layers: Scheme, lead: dict[str, str], tmp_path: Path
) -> None:
    response = _get(client, "/exports/map.pdf", lead, layer="calls")
    text = _pdf_text(response.content, tmp_path)
    assert text.count("OFFICIAL-SENSITIVE") >= 2  # top and bottom of the page
    assert "SYNTHETIC" in text
    assert response.headers["x-protective-marking"] == "OFFICIAL-SENSITIVE"


@pytest.mark.parametrize("product", ["multiples", "ranking"])
def test_multiples_and_ranking_render(client: TestClient, layers: Scheme, product: str) -> None:
    response = _get(client, f"/exports/{product}.png", layer="harm_rate", compare="2018-12..2019-03")
    image = Image.open(io.BytesIO(response.content))
    assert image.size[0] > image.size[1] > 2000


def test_geopackage_download(client: TestClient, layers: Scheme, tmp_path: Path) -> None:
    response = _get(client, "/exports/table.gpkg", layer="harm_rate")
    path = tmp_path / "wards.gpkg"
    path.write_bytes(response.content)
    names = [name for name, _ in pyogrio.list_layers(path)]
    assert names == ["harm_rate", "notes"]
    frame = pyogrio.read_dataframe(path, layer="harm_rate")
    assert len(frame) == 261
    assert {"code", "name", "value", "value_low", "value_high", "class", "class_label", "withheld"} <= set(
        frame
    )
    assert frame.crs.to_epsg() == 27700
    assert frame.geometry.notna().all()
    notes = pyogrio.read_dataframe(path, layer="notes")
    assert "caveat" in set(notes["field"])


def test_xlsx_download_has_data_and_notes(
    client: TestClient, layers: Scheme, lead: dict[str, str], tmp_path: Path
) -> None:
    response = _get(client, "/exports/table.xlsx", lead, layer="trauma")
    book = load_workbook(io.BytesIO(response.content))
    assert book.sheetnames == ["data", "notes"]
    data = list(book["data"].iter_rows(values_only=True))
    assert data[0][:4] == ("code", "name", "layer", "value") and len(data) == 262
    notes = dict(row for row in book["notes"].iter_rows(min_row=2, values_only=True) if row[0] != "caveat")
    assert notes["marking"] == "OFFICIAL-SENSITIVE"
    assert notes["method: config_version"]


def test_csv_and_geojson_downloads(client: TestClient, layers: Scheme) -> None:
    csv_text = _get(client, "/exports/table.csv", layer="ethnic_share", group="Asian").text
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("code,name,layer,value") and len(lines) == 262
    collection = json.loads(_get(client, "/exports/table.geojson", layer="deprivation").content)
    assert len(collection["features"]) == 261
    assert collection["metadata"]["layer"] == "deprivation"
    assert collection["metadata"]["period"] == "IMD 2019"
    first = collection["features"][0]
    assert first["geometry"]["type"] in ("Polygon", "MultiPolygon")
    ring = first["geometry"]["coordinates"][0]
    lon, lat = (ring[0][0] if first["geometry"]["type"] == "MultiPolygon" else ring[0])[:2]
    assert -2.0 < lon < -0.5 and 50.5 < lat < 51.5


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("/exports/map.svg", {"layer": "harm_rate"}, "format"),
        ("/exports/table.shp", {"layer": "harm_rate"}, "format"),
        ("/exports/map.png", {"layer": "harm_rate'; DROP TABLE areas;--"}, "layer"),
        ("/map/layers/nope", {}, "layer"),
        ("/map/layers/trauma", {"level": "h3_8"}, "level"),
        ("/map/layers/harm_rate", {"k": "9"}, "k"),
        ("/map/layers/harm_rate", {"period": "2018-13"}, "period"),
    ],
)
def test_bad_export_and_layer_requests(
    client: TestClient,
    layers: Scheme,
    lead: dict[str, str],
    path: str,
    params: dict[str, str],
    parameter: str,
) -> None:
    response = client.get(path, params={"force": HAMPSHIRE, **params}, headers=lead)
    assert response.status_code == 422, response.text
    body = response.json()
    assert parameter in (body.get("parameter"), *(p.get("name") for p in body.get("invalid-params", [])))


def test_map_page_assets_and_catalog(client: TestClient, layers: Scheme) -> None:
    page = client.get("/map")
    assert page.status_code == 200 and "maplibre-gl.js" in page.text
    assert client.get("/map/vendor/maplibre-gl.js").status_code == 200
    assert client.get("/map/assets/map.js").status_code == 200
    assert client.get("/map/assets/..%2F..%2Fpyproject.toml").status_code == 404
    assert client.get("/map/vendor/package.json").status_code == 404
    links = client.get("/").json()["links"]
    assert any(link["href"].endswith("/map") and link["type"] == "text/html" for link in links)
    catalog = client.get("/map/catalog").json()
    assert {layer["id"] for layer in catalog["layers"]} == set(LAYERS)
    hampshire = next(f for f in catalog["forces"] if f["code"] == HAMPSHIRE)
    assert hampshire["name"] == "Hampshire" and "2018-12" in hampshire["months"]
    layer = client.get("/map/layers/harm_rate", params={"force": HAMPSHIRE, "period": "2018-12"}).json()
    assert layer["collection"] == "wards" and len(layer["areas"]) == 261
    assert all(len(a["point"]) == 2 for a in layer["areas"])
    assert layer["classes"]["colours"] and layer["metadata"]["scheme"] == "ons-css"


def test_cli_exports_match_the_http_ones(
    client: TestClient, layers: Scheme, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HARMMAP_DATABASE_URL", settings.database_url)
    out = tmp_path / "wards.csv"
    args = ["export", "table", "--force", HAMPSHIRE, "--period", "2018-12", "--layer", "harm_rate"]
    result = CliRunner().invoke(cli, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "261 areas" in result.output
    assert out.read_text() == _get(client, "/exports/table.csv", layer="harm_rate").text
    pdf = tmp_path / "map.pdf"
    result = CliRunner().invoke(
        cli,
        ["export", "map", "--force", HAMPSHIRE, "--period", "2018-12", "--layer", "calls", "--out", str(pdf)],
    )
    assert result.exit_code == 0, result.output
    assert "OFFICIAL-SENSITIVE" in result.output and pdf.read_bytes().startswith(b"%PDF")
    bad = CliRunner().invoke(cli, [*args[:-1], "deprivation", "--level", "h3_8", "--out", str(out)])
    assert bad.exit_code == 1 and "not a level of the deprivation layer" in bad.output
