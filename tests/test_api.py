"""HTTP contracts: /health, /forces, /areas, and the problem+json error bodies."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import ProgrammingError

from app.auth import OPEN
from app.main import create_app
from harmmap import db
from harmmap.settings import Settings

HAMPSHIRE = "E23000030"
WEST_MIDLANDS = "E23000014"
PROBLEM = "application/problem+json"
GEOJSON = "application/geo+json"
SIX_DP = re.compile(r"-?\d+\.\d{7,}")


def coordinates(geometry: dict[str, Any]) -> list[tuple[float, float]]:
    def walk(node: Any) -> list[tuple[float, float]]:
        if isinstance(node[0], (int, float)):
            return [(node[0], node[1])]
        return [pt for child in node for pt in walk(child)]

    return walk(geometry["coordinates"])


def assert_problem(response: Any, status: int, parameter: str | None) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "instance", "request_id"} <= body.keys()
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    assert body.get("parameter") == parameter
    return body


def test_health_reports_database_postgis_and_migration_head(client: TestClient, settings: Settings) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    database = body["database"]
    assert database["reachable"] is True
    assert database["postgis_version"].startswith("3.")
    assert database["migration_revision"] == database["migration_head"] == db.migration_head(settings.db_url)
    assert database["up_to_date"] is True


def test_forces_lists_43_with_area_and_counts(client: TestClient) -> None:
    response = client.get("/forces")
    assert response.status_code == 200
    assert response.headers["content-type"] == GEOJSON
    collection = response.json()
    assert collection["type"] == "FeatureCollection"
    assert len(collection["features"]) == 43
    by_code = {f["properties"]["code"]: f["properties"] for f in collection["features"]}
    hants = by_code[HAMPSHIRE]
    assert hants["name"] == "Hampshire"
    assert (hants["ward_count"], hants["lsoa11_count"], hants["lsoa21_count"]) == (261, 1194, 1231)
    assert 3900 < hants["area_km2"] < 4300
    wm = by_code[WEST_MIDLANDS]
    assert (wm["ward_count"], wm["lsoa11_count"], wm["lsoa21_count"]) == (192, 1680, 1719)
    # Forces outside the pilots are there for context, with no small areas loaded.
    assert by_code["E23000001"]["ward_count"] == 0


def test_one_force(client: TestClient) -> None:
    response = client.get(f"/forces/{WEST_MIDLANDS}")
    assert response.status_code == 200
    assert response.headers["content-type"] == GEOJSON
    feature = response.json()
    assert feature["type"] == "Feature"
    assert feature["id"] == WEST_MIDLANDS
    assert feature["properties"]["name"] == "West Midlands"
    assert feature["geometry"]["type"] == "MultiPolygon"


def test_lowercase_force_code_is_accepted(client: TestClient) -> None:
    assert client.get("/forces/e23000030").json()["id"] == HAMPSHIRE


def test_unknown_force_is_404_problem(client: TestClient) -> None:
    body = assert_problem(client.get("/forces/E23000099"), 404, "code")
    assert "E23000099" in body["detail"]


def test_malformed_force_code_is_422_problem(client: TestClient) -> None:
    body = assert_problem(client.get("/forces/hampshire"), 422, "code")
    assert "E23" in body["detail"]
    assert body["invalid-params"][0]["in"] == "path"


@pytest.mark.parametrize(("force", "expected"), [(HAMPSHIRE, 261), (WEST_MIDLANDS, 192)])
def test_wards_of_a_force(client: TestClient, force: str, expected: int) -> None:
    response = client.get("/areas", params={"level": "ward", "force": force})
    assert response.status_code == 200
    assert response.headers["content-type"] == GEOJSON
    collection = response.json()
    assert collection["type"] == "FeatureCollection"
    features = collection["features"]
    assert len(features) == expected
    assert all(f["properties"]["force_code"] == force for f in features)
    assert all(f["properties"]["level"] == "ward" and f["properties"]["vintage"] == "WD24" for f in features)


def test_areas_are_rfc7946_lon_lat_with_six_decimals(client: TestClient) -> None:
    response = client.get("/areas", params={"level": "ward", "force": HAMPSHIRE})
    assert not SIX_DP.search(response.text), "coordinates must have at most 6 decimal places"
    for feature in response.json()["features"]:
        assert "crs" not in feature
        for lon, lat in coordinates(feature["geometry"]):
            # Hampshire and the Isle of Wight: longitude first, then latitude.
            assert -2.0 < lon < -0.7 and 50.5 < lat < 51.4


def test_areas_filtered_by_local_authority(client: TestClient) -> None:
    response = client.get("/areas", params={"level": "lsoa21", "lad": "E06000044"})
    features = response.json()["features"]
    assert len(features) > 100
    assert {f["properties"]["lad_code"] for f in features} == {"E06000044"}


def test_areas_of_a_level_with_no_match_is_an_empty_collection(client: TestClient) -> None:
    response = client.get("/areas", params={"level": "ward", "force": HAMPSHIRE, "vintage": "WD19"})
    assert response.status_code == 200
    assert response.json() == {"type": "FeatureCollection", "features": []}


def test_bad_level_names_the_parameter_and_allowed_values(client: TestClient) -> None:
    body = assert_problem(client.get("/areas", params={"level": "county"}), 422, "level")
    assert body["allowed"] == ["force", "local_authority", "ward", "lsoa11", "lsoa21"]


def test_missing_level_is_422(client: TestClient) -> None:
    assert_problem(client.get("/areas"), 422, "level")


def test_malformed_force_parameter_is_422(client: TestClient) -> None:
    body = assert_problem(client.get("/areas", params={"level": "ward", "force": "E99"}), 422, "force")
    assert body["invalid-params"] == [
        {
            "name": "force",
            "in": "query",
            "reason": "must be a police force area GSS code: E23 or W15 and six digits, e.g. E23000030",
        }
    ]


def test_unknown_force_parameter_is_404(client: TestClient) -> None:
    assert_problem(client.get("/areas", params={"level": "ward", "force": "E23000099"}), 404, "force")


def test_unknown_lad_parameter_is_404(client: TestClient) -> None:
    assert_problem(client.get("/areas", params={"level": "ward", "lad": "E08000099"}), 404, "lad")


def test_unknown_route_is_a_problem(client: TestClient) -> None:
    assert_problem(client.get("/nowhere"), 404, None)


def test_openapi_documents_geojson_and_problems(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    areas = spec["paths"]["/areas"]["get"]
    assert "application/geo+json" in areas["responses"]["200"]["content"]
    assert "application/problem+json" in areas["responses"]["422"]["content"]
    assert "Problem" in spec["components"]["schemas"]


def down_settings() -> Settings:
    # Nothing listens on port 9; connecting fails at once, as when the database is down.
    return Settings(
        database_url="postgresql+psycopg://postgres@127.0.0.1:9/harmmap",
        environment="test",
        db_connect_timeout_s=1,
    )


def test_health_is_503_when_database_is_down() -> None:
    with TestClient(create_app(down_settings())) as down:
        response = down.get("/health")
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert response.json()["status"] == "unavailable"
    assert response.json()["database"]["reachable"] is False


def test_queries_are_503_problems_when_database_is_down() -> None:
    with TestClient(create_app(down_settings())) as down:
        response = down.get("/forces")
    body = assert_problem(response, 503, None)
    assert response.headers["retry-after"]
    assert "9" not in body["detail"] and "127.0.0.1" not in json.dumps(body)


def test_a_500_never_leaks_database_text(settings: Settings) -> None:
    app = create_app(settings)

    def broken() -> None:
        raise ProgrammingError("SELECT * FROM secret_table", {}, Exception("relation secret_table"))

    app.add_api_route("/broken", broken)
    app.state.route_access["/broken"] = OPEN
    with TestClient(app, raise_server_exceptions=False) as test_client:
        response = test_client.get("/broken")
    body = assert_problem(response, 500, None)
    assert "secret_table" not in response.text
    assert body["request_id"] in body["detail"]
