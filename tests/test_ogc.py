"""OGC API - Features: contracts, paging, CRS, formats, bad input, and GDAL as a real client."""

from __future__ import annotations

import csv
import datetime as dt
import io
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from pyproj import Transformer
from sqlalchemy import Engine, text

from harm_index.periods import Period
from harm_index.scores import area_harm
from harm_index.weights import Scheme, shipped_ons_css_scheme, store_scheme
from harmmap.settings import REPO_ROOT, Settings
from ingest.batch import ingest_file
from ingest.police_uk import PoliceUkStreet
from ingest.reference import CensusEthnicityLsoa

HAMPSHIRE = "E23000030"
DATA = REPO_ROOT / "data"
DECEMBER = "2018-12"
GEOJSON = "application/geo+json"


@pytest.fixture(scope="module")
def loaded(engine: Engine) -> Iterator[Scheme]:
    with engine.connect() as conn:
        before = conn.execute(text("SELECT coalesce(max(id), 0) FROM ingest_batches")).scalar_one()
    ingest_file(
        engine,
        DATA / "reference_layers" / "ts021_ethnic_group_broad_lsoa21_hampshire_westmidlands.csv",
        CensusEthnicityLsoa(),
    )
    ingest_file(
        engine, DATA / "police_uk" / "street" / "hampshire" / "2018-12-hampshire-street.csv", PoliceUkStreet()
    )
    scheme = shipped_ons_css_scheme(DATA)
    with engine.begin() as conn:
        store_scheme(conn, scheme)
    yield scheme
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM ingest_batches WHERE id > :id"), {"id": before})
        conn.execute(text("DELETE FROM weight_schemes"))


def problem(response: Any, status: int, parameter: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["parameter"] == parameter, body
    return body


def test_landing_conformance_and_collections(client: TestClient, loaded: Scheme) -> None:
    landing = client.get("/").json()
    rels = {link["rel"] for link in landing["links"]}
    assert {"self", "service-desc", "service-doc", "conformance", "data"} <= rels
    conformance = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conformance
    assert "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in conformance
    collections = client.get("/collections").json()["collections"]
    assert [c["id"] for c in collections] == [
        "forces",
        "local-authorities",
        "wards",
        "lsoas",
        "h3-7",
        "h3-8",
        "h3-9",
    ]
    wards = client.get("/collections/wards").json()
    assert {"self", "items"} <= {link["rel"] for link in wards["links"]}
    assert "http://www.opengis.net/def/crs/EPSG/0/27700" in wards["crs"]
    assert len(wards["extent"]["spatial"]["bbox"][0]) == 4
    problem(client.get("/collections/counties"), 404, "collectionId")


def test_items_carry_harm_equal_to_the_engine(client: TestClient, engine: Engine, loaded: Scheme) -> None:
    response = client.get(
        "/collections/wards/items",
        params={"force": HAMPSHIRE, "period": DECEMBER, "limit": 500, "sortby": "-harm_rate"},
    )
    assert response.status_code == 200 and response.headers["content-type"] == GEOJSON
    assert response.headers["content-crs"] == "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
    body = response.json()
    assert body["numberMatched"] == body["numberReturned"] == 261
    rates = [
        f["properties"]["harm_rate"] for f in body["features"] if f["properties"]["harm_rate"] is not None
    ]
    assert rates == sorted(rates, reverse=True)
    with engine.connect() as conn:
        month = Period(dt.date(2018, 12, 1), dt.date(2018, 12, 1), "2018-12")
        expected = area_harm(conn, level="ward", force_code=HAMPSHIRE, period=month, scheme=loaded)
    by_code = {a.code: a for a in expected.areas}
    for feature in body["features"][:50]:
        props = feature["properties"]
        area = by_code[feature["id"]]
        if props["withheld"]:
            assert props["incidents"] is None and 1 <= area.incidents <= 4
        else:
            assert props["incidents"] == area.incidents
            assert props["harm"] == pytest.approx(area.harm)
            assert props["value"] == props["harm_rate"]
    assert any("where crimes happened" in c for c in body["harmmap"]["caveats"])


def test_paging_returns_every_ward_exactly_once(client: TestClient, loaded: Scheme) -> None:
    seen: list[str] = []
    url: str | None = "/collections/wards/items?limit=50&period=2018-12&sortby=-incidents,code"
    pages = 0
    while url:
        body = client.get(url).json()
        seen += [f["id"] for f in body["features"]]
        following = [link["href"] for link in body["links"] if link["rel"] == "next"]
        url = following[0] if following else None
        pages += 1
    assert pages == 10 and len(seen) == len(set(seen)) == 453
    prev = client.get("/collections/wards/items?limit=50&offset=50").json()
    assert any(link["rel"] == "prev" for link in prev["links"])


def test_crs_round_trip(client: TestClient, loaded: Scheme) -> None:
    params = {"force": HAMPSHIRE, "limit": 3, "properties": "code,name"}
    lonlat = client.get("/collections/wards/items", params=params).json()["features"]
    bng = client.get(
        "/collections/wards/items", params={**params, "crs": "http://www.opengis.net/def/crs/EPSG/0/27700"}
    )
    assert bng.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/27700>"
    to_bng = Transformer.from_crs(4326, 27700, always_xy=True)
    for a, b in zip(lonlat, bng.json()["features"], strict=True):
        assert set(a["properties"]) == {"code", "name"}
        lon, lat = a["geometry"]["coordinates"][0][0][0]
        x, y = b["geometry"]["coordinates"][0][0][0]
        ex, ey = to_bng.transform(lon, lat)
        assert abs(ex - x) < 1.0 and abs(ey - y) < 1.0


def test_bbox_h3_csv_and_single_feature(client: TestClient, loaded: Scheme) -> None:
    portsmouth = client.get(
        "/collections/wards/items", params={"bbox": "-1.12,50.77,-1.04,50.84", "limit": 1000}
    ).json()
    assert 0 < portsmouth["numberMatched"] < 40
    cells = client.get("/collections/h3-8/items", params={"period": DECEMBER, "limit": 5}).json()
    assert cells["numberMatched"] > 100 and cells["features"][0]["geometry"]["type"] == "Polygon"
    cell = cells["features"][0]["id"]
    one = client.get(f"/collections/h3-8/items/{cell}", params={"period": DECEMBER})
    assert one.status_code == 200 and one.json()["id"] == cell
    table = client.get("/collections/wards/items", params={"f": "csv", "force": HAMPSHIRE, "limit": 10})
    assert table.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert len(rows) == 10 and "harm_rate" in rows[0]
    ward = client.get(f"/collections/wards/items/{rows[0]['code']}").json()
    assert ward["properties"]["code"] == rows[0]["code"]
    problem(client.get("/collections/wards/items/E05999999"), 404, "featureId")


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"bbox": "1,1,0,0"}, "bbox"),
        ({"bbox": "-180,-90,180,90"}, "bbox"),
        ({"bbox": "a,b,c,d"}, "bbox"),
        ({"limit": -1}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"offset": -5}, "offset"),
        ({"properties": "code,secret"}, "properties"),
        ({"sortby": "geometry"}, "sortby"),
        ({"crs": "http://www.opengis.net/def/crs/EPSG/0/3857"}, "crs"),
        ({"period": "2019-13"}, "period"),
        ({"period": "last summer"}, "period"),
        ({"metric": "vibes"}, "metric"),
        ({"f": "xml"}, "f"),
        ({"force": "E23000030'; DROP TABLE areas; --"}, "force"),
        ({"sortby": "code; DROP TABLE areas"}, "sortby"),
        ({"properties": "name) FROM areas --"}, "properties"),
        ({"scheme": "ons-css' OR '1'='1"}, "scheme"),
        ({"crs": "EPSG:27700' --"}, "crs"),
    ],
)
def test_bad_parameters_name_themselves(
    client: TestClient, engine: Engine, loaded: Scheme, params: dict[str, Any], parameter: str
) -> None:
    problem(client.get("/collections/wards/items", params=params), 422, parameter)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM areas WHERE level = 'ward'")).scalar_one() == 453


@pytest.fixture(scope="module")
def ogc_server(
    settings: Settings, loaded: Scheme, serve: Callable[[Settings], AbstractContextManager[str]]
) -> Iterator[str]:
    with serve(settings) as url:
        yield url


def test_gdal_lists_and_downloads_every_collection(ogc_server: str, tmp_path: Path) -> None:
    """GDAL's OAPIF driver (what QGIS uses) reads the service unchanged."""
    ogrinfo, ogr2ogr = shutil.which("ogrinfo"), shutil.which("ogr2ogr")
    assert ogrinfo and ogr2ogr, "gdal-bin is missing: scripts/bootstrap.sh installs it"
    listing = subprocess.run(
        [ogrinfo, "-ro", "-so", "-al", f"OAPIF:{ogc_server}"], capture_output=True, text=True, timeout=600
    )
    assert listing.returncode == 0, listing.stderr
    for name in ("forces", "local-authorities", "wards", "lsoas", "h3-7", "h3-8", "h3-9"):
        assert f"Layer name: {name}" in listing.stdout
    assert "Feature Count: 453" in listing.stdout
    out = tmp_path / "harmmap.gpkg"
    download = subprocess.run(
        [ogr2ogr, "-f", "GPKG", str(out), f"OAPIF:{ogc_server}", "wards", "forces"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert download.returncode == 0, download.stderr
    check = subprocess.run([ogrinfo, "-so", str(out), "wards"], capture_output=True, text=True, timeout=60)
    assert "Feature Count: 453" in check.stdout


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    import math

    n = 1 << z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def test_a_tile_decodes_to_the_wards_with_their_harm(client: TestClient, loaded: Scheme) -> None:
    import mapbox_vector_tile

    x, y = _tile_of(-1.09, 50.80, 12)  # Portsmouth
    url = f"/tiles/wards/12/{x}/{y}.mvt"
    response = client.get(url, params={"period": DECEMBER})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    assert "max-age" in response.headers["cache-control"]
    layer = mapbox_vector_tile.decode(response.content)["wards"]
    features = {f["properties"]["code"]: f["properties"] for f in layer["features"]}
    items = client.get(
        "/collections/wards/items",
        params={"period": DECEMBER, "bbox": "-1.12,50.77,-1.04,50.84", "limit": 100},
    ).json()["features"]
    expected = {f["id"]: f["properties"] for f in items}
    shared = set(features) & set(expected)
    assert len(shared) >= 3
    for code in shared:
        assert features[code]["name"] == expected[code]["name"]
        if expected[code]["harm_rate"] is not None:
            assert features[code]["harm_rate"] == pytest.approx(expected[code]["harm_rate"])
    # The ETag holds until the data changes; a matching If-None-Match gets 304.
    again = client.get(url, params={"period": DECEMBER}, headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304
    # Coarser zooms carry simpler outlines: fewer vertices per ward.
    x8, y8 = _tile_of(-1.09, 50.80, 8)
    coarse = mapbox_vector_tile.decode(client.get(f"/tiles/wards/8/{x8}/{y8}.mvt").content)["wards"]
    assert len(coarse["features"]) > len(layer["features"])
    empty = client.get("/tiles/wards/12/0/0.mvt")
    assert empty.status_code == 204
    tilejson = client.get("/tiles/wards/tilejson.json").json()
    assert tilejson["tiles"][0].endswith("/tiles/wards/{z}/{x}/{y}.mvt?metric=harm_rate")
    assert tilejson["vector_layers"][0]["id"] == "wards"


def test_the_etag_changes_when_data_is_reloaded(client: TestClient, engine: Engine, loaded: Scheme) -> None:
    x, y = _tile_of(-1.40, 50.90, 11)  # Southampton
    url = f"/tiles/wards/11/{x}/{y}.mvt"
    before = client.get(url).headers["etag"]
    report = ingest_file(
        engine, DATA / "police_uk" / "street" / "hampshire" / "2017-02-hampshire-street.csv", PoliceUkStreet()
    )
    try:
        assert client.get(url).headers["etag"] != before
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM ingest_batches WHERE id = :b"), {"b": report.batch_id})


def test_tiles_come_from_memory_until_the_data_changes(
    client: TestClient, engine: Engine, loaded: Scheme
) -> None:
    import mapbox_vector_tile

    def figures(response: Response) -> int:
        if response.status_code == 204:
            return 0
        features = mapbox_vector_tile.decode(response.content)["wards"]["features"]
        return sum(1 for f in features if "incidents" in f["properties"])

    cache = client.app.state.tile_cache  # type: ignore[attr-defined]
    x, y = _tile_of(-1.40, 50.90, 11)  # Southampton
    url = f"/tiles/wards/11/{x}/{y}.mvt"
    period = {"period": "2017-02"}  # a month the fixtures do not load
    first = client.get(url, params=period)
    hits = cache.hits
    second = client.get(url, params=period)
    assert cache.hits == hits + 1
    assert (second.status_code, second.content, second.headers["etag"]) == (
        first.status_code,
        first.content,
        first.headers["etag"],
    )
    assert figures(first) == 0
    report = ingest_file(
        engine, DATA / "police_uk" / "street" / "hampshire" / "2017-02-hampshire-street.csv", PoliceUkStreet()
    )
    try:
        misses = cache.misses
        after = client.get(url, params=period)
        assert cache.misses == misses + 1
        assert after.headers["etag"] != first.headers["etag"]
        assert figures(after) > 0, "a cached tile outlived the data it was drawn from"
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM ingest_batches WHERE id = :b"), {"b": report.batch_id})


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/tiles/wards/19/0/0.mvt", "z"),
        ("/tiles/wards/3/8/0.mvt", "x"),
        ("/tiles/wards/3/0/9.mvt", "y"),
        ("/tiles/wards/-1/0/0.mvt", "z"),
        ("/tiles/counties/3/0/0.mvt", "collectionId"),
    ],
)
def test_bad_tile_addresses_name_the_part(
    client: TestClient, loaded: Scheme, path: str, parameter: str
) -> None:
    response = client.get(path)
    assert response.status_code in (404, 422)
    assert response.json()["parameter"] == parameter


@pytest.fixture
def as_analyst(client: TestClient, api_keys: dict[str, str]) -> Iterator[Callable[[str | None], None]]:
    """Make the client's requests carry a real analyst key of a force (None: no key, anonymous)."""
    keys = {HAMPSHIRE: api_keys["analyst-hampshire"], "E23000014": api_keys["analyst-west-midlands"]}

    def become(force: str | None) -> None:
        client.headers.pop("X-API-Key", None)
        if force:
            client.headers["X-API-Key"] = keys[force]

    yield become
    client.headers.pop("X-API-Key", None)


def test_record_collections_only_for_an_analyst_of_the_force(
    client: TestClient, loaded: Scheme, as_analyst: Callable[[str | None], None]
) -> None:
    # Public: not listed, and refused outright.
    ids = [c["id"] for c in client.get("/collections").json()["collections"]]
    assert "incidents" not in ids
    problem(client.get("/collections/incidents/items"), 403, "collectionId")
    problem(client.get("/collections/incidents"), 403, "collectionId")
    # A Hampshire analyst sees Hampshire's points, and nobody else's.
    as_analyst(HAMPSHIRE)
    ids = [c["id"] for c in client.get("/collections").json()["collections"]]
    assert {"incidents", "stop-searches"} <= set(ids)
    body = client.get("/collections/incidents/items", params={"period": DECEMBER, "limit": 20}).json()
    assert body["numberMatched"] > 10_000 and body["numberReturned"] == 20
    assert body["harmmap"]["classification"] == "OFFICIAL-SENSITIVE"
    assert all(f["geometry"]["type"] == "Point" for f in body["features"])
    assert any(link["rel"] == "next" for link in body["links"])
    problem(
        client.get("/collections/incidents/items", params={"force": "E23000014", "period": DECEMBER}),
        403,
        "force",
    )
    as_analyst("E23000014")
    west = client.get("/collections/incidents/items", params={"period": DECEMBER}).json()
    assert west["numberMatched"] == 0
