"""Access control, audit and limits: every role against every force and every route, with real keys.

The expected outcome of each cell is written out here from the policy table in ``harmmap/access.py``'s
docstring, not computed by calling the policy, so a change to the policy shows up as failing cells.
"""

from __future__ import annotations

import csv
import io
import json
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from app.auth import ROUTE_ACCESS
from app.main import create_app
from harm_index.weights import Scheme
from harmmap import audit
from harmmap.access import Role
from harmmap.keys import create_key, list_keys, revoke_key
from harmmap.settings import Settings

HAMPSHIRE = "E23000030"
WEST_MIDLANDS = "E23000014"
FORCES = (HAMPSHIRE, WEST_MIDLANDS)
DECEMBER = "2018-12"
HOLDERS = ("anonymous", "public", "analyst-hampshire", "analyst-west-midlands", "lead", "admin")
OWN_FORCE = {"analyst-hampshire": HAMPSHIRE, "analyst-west-midlands": WEST_MIDLANDS}


def tile_at(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    """The web-mercator tile holding a point."""
    n = 1 << z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


# A tile in the middle of each force: Winchester and Birmingham.
CENTRES = {HAMPSHIRE: (-1.31, 51.06), WEST_MIDLANDS: (-1.90, 52.48)}


@dataclass(frozen=True)
class Case:
    """One request of the matrix: the route it exercises, the request, and the kind of data it reads."""

    route: str
    kind: str  # open, aggregate, force_held, records, admin
    method: str
    url: str
    params: dict[str, Any]


def cases(force: str, ward: str) -> list[Case]:
    """Every route, with parameters concerning ``force``."""
    z, x, y = tile_at(*CENTRES[force], 10)
    pz, px, py = tile_at(*CENTRES[force], 14)
    layer = {"force": force, "period": DECEMBER, "level": "local_authority"}
    return [
        Case("/", "open", "GET", "/", {}),
        Case("/conformance", "open", "GET", "/conformance", {}),
        Case("/health", "open", "GET", "/health", {}),
        Case("/health/live", "open", "GET", "/health/live", {}),
        Case("/health/ready", "open", "GET", "/health/ready", {}),
        Case("/collections", "open", "GET", "/collections", {}),
        Case("/map", "open", "GET", "/map", {}),
        Case("/map/assets/{name}", "open", "GET", "/map/assets/map.js", {}),
        Case("/map/vendor/{name}", "open", "GET", "/map/vendor/maplibre-gl.css", {}),
        Case("/map/catalog", "open", "GET", "/map/catalog", {}),
        Case("/forces", "open", "GET", "/forces", {}),
        Case("/forces/{code}", "open", "GET", f"/forces/{force}", {}),
        Case("/areas", "open", "GET", "/areas", {"level": "local_authority", "force": force}),
        Case("/areas/{code}/summary", "aggregate", "GET", f"/areas/{ward}/summary", {"period": DECEMBER}),
        Case("/collections/{collectionId}", "aggregate", "GET", "/collections/wards", {}),
        Case(
            "/collections/{collectionId}/items",
            "aggregate",
            "GET",
            "/collections/wards/items",
            {"force": force, "period": DECEMBER, "limit": 5},
        ),
        Case(
            "/collections/{collectionId}/items/{featureId}",
            "aggregate",
            "GET",
            f"/collections/wards/items/{ward}",
            {"period": DECEMBER},
        ),
        Case(
            "/tiles/{collectionId}/{z}/{x}/{y}.mvt", "aggregate", "GET", f"/tiles/wards/{z}/{x}/{y}.mvt", {}
        ),
        Case("/tiles/{collectionId}/tilejson.json", "aggregate", "GET", "/tiles/wards/tilejson.json", {}),
        Case(
            "/disproportionality",
            "aggregate",
            "GET",
            "/disproportionality",
            {"force": force, "period": DECEMBER},
        ),
        Case("/exposure", "aggregate", "GET", "/exposure", {"force": force, "period": DECEMBER}),
        Case(
            "/hotspots",
            "aggregate",
            "GET",
            "/hotspots",
            {"force": force, "period": DECEMBER, "level": "ward", "permutations": 99},
        ),
        Case("/map/layers/{layer}", "aggregate", "GET", "/map/layers/harm_rate", layer),
        Case(
            "/exports/table.{fmt}", "aggregate", "GET", "/exports/table.csv", {"layer": "harm_rate", **layer}
        ),
        Case("/exports/map.{fmt}", "aggregate", "GET", "/exports/map.png", {"layer": "harm_rate", **layer}),
        Case("/calls", "force_held", "GET", "/calls", {"force": force, "period": DECEMBER}),
        Case("/trauma-scores", "force_held", "GET", "/trauma-scores", {"force": force, "period": DECEMBER}),
        Case("/map/layers/{layer}", "force_held", "GET", "/map/layers/calls", layer),
        Case("/exports/table.{fmt}", "force_held", "GET", "/exports/table.xlsx", {"layer": "calls", **layer}),
        Case(
            "/exports/multiples.{fmt}",
            "force_held",
            "GET",
            "/exports/multiples.pdf",
            {"layer": "trauma", **layer, "level": "ward", "compare": "2018-11"},
        ),
        Case(
            "/exports/ranking.{fmt}",
            "force_held",
            "GET",
            "/exports/ranking.png",
            {"layer": "calls", **layer, "top": 5},
        ),
        Case("/collections/{collectionId}", "records", "GET", "/collections/incidents", {"force": force}),
        Case(
            "/collections/{collectionId}/items",
            "records",
            "GET",
            "/collections/incidents/items",
            {"force": force, "period": DECEMBER, "limit": 5},
        ),
        Case(
            "/collections/{collectionId}/items",
            "records",
            "GET",
            "/collections/stop-searches/items",
            {"force": force, "period": DECEMBER, "limit": 5},
        ),
        Case(
            "/tiles/{collectionId}/{z}/{x}/{y}.mvt",
            "records",
            "GET",
            f"/tiles/incidents/{pz}/{px}/{py}.mvt",
            {"force": force, "period": DECEMBER},
        ),
        Case(
            "/tiles/{collectionId}/tilejson.json",
            "records",
            "GET",
            "/tiles/incidents/tilejson.json",
            {"force": force},
        ),
        Case("/admin/uploads", "admin", "POST", "/admin/uploads", {}),
    ]


def allowed(holder: str, kind: str, force: str) -> bool:
    """The policy, cell by cell (harmmap/access.py)."""
    own = OWN_FORCE.get(holder) == force
    return {
        "open": True,
        "aggregate": True,
        "force_held": own or holder == "lead",
        "records": own,
        "admin": holder == "admin",
    }[kind]


def audited(holder: str, kind: str, force: str, case: Case) -> str | None:
    """The audit action the cell must leave, or None for an unaudited public read."""
    if not allowed(holder, kind, force):
        return "denied" if kind in ("force_held", "records", "admin") else None
    if kind == "admin":
        return "ingest"
    export = case.url.startswith("/exports/")
    if kind in ("force_held", "records"):
        return "export" if export else "read"
    if export:
        return "export"
    # Unsuppressed figures for the analyst's own force are restricted, and audited.
    if kind == "aggregate" and OWN_FORCE.get(holder) == force and case.params.get("force") == force:
        return "read"
    return None


@pytest.fixture(scope="module")
def wards(client: TestClient, layers: Scheme) -> dict[str, str]:
    """A ward of each force."""
    found = {}
    for force in FORCES:
        body = client.get("/areas", params={"level": "ward", "force": force}).json()
        found[force] = body["features"][0]["properties"]["code"]
    return found


def _headers(api_keys: dict[str, str], holder: str) -> dict[str, str]:
    return {} if holder == "anonymous" else {"X-API-Key": api_keys[holder]}


def _audit_rows(engine: Engine, request_id: str) -> list[audit.AuditRow]:
    with engine.connect() as conn:
        return audit.query(conn, request_id=request_id)


@pytest.mark.parametrize("holder", HOLDERS)
def test_access_matrix_every_role_force_and_route(
    client: TestClient,
    engine: Engine,
    api_keys: dict[str, str],
    wards: dict[str, str],
    holder: str,
) -> None:
    """Each cell: the status the policy gives, and the audit row (or none) it must leave."""
    failures = []
    exercised = set()
    for force in FORCES:
        for case in cases(force, wards[force]):
            exercised.add(case.route)
            response = client.request(
                case.method, case.url, params=case.params, headers=_headers(api_keys, holder)
            )
            status = response.status_code
            ok = allowed(holder, case.kind, force)
            if case.kind == "admin" and ok:
                expected_ok = status == 422  # the admin may upload; an empty body is the upload's 422
            elif ok:
                expected_ok = status in (200, 204)
            else:
                expected_ok = status == 403
            cell = f"{holder} x {force} x {case.url} ({case.kind})"
            if not expected_ok:
                failures.append(f"{cell}: {status} {response.text[:200]}")
                continue
            rows = _audit_rows(engine, response.headers["X-Request-ID"])
            action = audited(holder, case.kind, force, case)
            if action is None:
                if rows:
                    failures.append(f"{cell}: unexpected audit row {rows[0].action}")
                continue
            if len(rows) != 1 or rows[0].action != action:
                failures.append(f"{cell}: audit {[r.action for r in rows]}, expected {action}")
                continue
            row = rows[0]
            subject = "anonymous" if holder == "anonymous" else f"key:{api_keys[holder].split('_')[1]}"
            if row.subject != subject or row.status != status or row.endpoint != case.url:
                failures.append(f"{cell}: audit row {row}")
            if action in ("read", "export") and row.rows is None:
                failures.append(f"{cell}: the audit row does not say how many rows were returned")
    assert failures == [], "\n".join(failures)
    assert exercised == set(ROUTE_ACCESS), f"routes not in the matrix: {set(ROUTE_ACCESS) - exercised}"


def test_unsuppressed_only_for_the_analysts_own_force(
    client: TestClient, api_keys: dict[str, str], layers: Scheme
) -> None:
    params = {"force": HAMPSHIRE, "period": DECEMBER}
    own = client.get("/calls", params=params, headers=_headers(api_keys, "analyst-hampshire")).json()
    lead = client.get("/calls", params=params, headers=_headers(api_keys, "lead")).json()
    assert own["metadata"]["disclosure"].startswith("no disclosure control")
    assert lead["metadata"]["disclosure"].startswith("counts of 1 to")
    other = client.get(
        "/disproportionality", params=params, headers=_headers(api_keys, "analyst-west-midlands")
    ).json()
    assert other["metadata"]["disclosure"].startswith("counts of 1 to")


def test_a_hampshire_analyst_asking_for_west_midlands_points_gets_403(
    client: TestClient, api_keys: dict[str, str], layers: Scheme
) -> None:
    response = client.get(
        "/collections/incidents/items",
        params={"force": WEST_MIDLANDS},
        headers=_headers(api_keys, "analyst-hampshire"),
    )
    assert response.status_code == 403
    assert response.json()["parameter"] == "force"
    assert "E23000030" in response.json()["detail"]


def test_record_points_start_at_zoom_12(client: TestClient, api_keys: dict[str, str], layers: Scheme) -> None:
    z, x, y = tile_at(*CENTRES[HAMPSHIRE], 11)
    response = client.get(
        f"/tiles/incidents/{z}/{x}/{y}.mvt", headers=_headers(api_keys, "analyst-hampshire")
    )
    assert response.status_code == 422
    assert response.json()["parameter"] == "z"


def test_record_tiles_hold_the_forces_points(
    client: TestClient, api_keys: dict[str, str], layers: Scheme
) -> None:
    import mapbox_vector_tile

    z, x, y = tile_at(*CENTRES[HAMPSHIRE], 13)
    response = client.get(
        f"/tiles/incidents/{z}/{x}/{y}.mvt",
        params={"period": DECEMBER},
        headers=_headers(api_keys, "analyst-hampshire"),
    )
    assert response.status_code == 200
    assert response.headers["Cache-Control"].startswith("private")
    assert response.headers["X-Protective-Marking"] == "OFFICIAL-SENSITIVE"
    decoded = mapbox_vector_tile.decode(response.content)
    features = decoded["incidents"]["features"]
    assert features and all(f["geometry"]["type"] == "Point" for f in features)
    assert {"crime_type", "month", "synthetic"} <= set(features[0]["properties"])


def _withheld_anywhere(tile: bytes) -> tuple[int, int]:
    """(features with harm figures, features with a count of 1 to 4) in a decoded ward tile."""
    import mapbox_vector_tile

    features = mapbox_vector_tile.decode(tile)["wards"]["features"] if tile else []
    with_figures = [f for f in features if "incidents" in f["properties"]]
    small = [f for f in with_figures if 0 < f["properties"]["incidents"] <= 4]
    return len(with_figures), len(small)


def test_an_analysts_own_force_never_unsuppresses_another_forces_figures(
    client: TestClient, api_keys: dict[str, str], wards: dict[str, str]
) -> None:
    """Naming their own force must not lift disclosure control on a Hampshire tile or feature."""
    analyst = _headers(api_keys, "analyst-west-midlands")
    z, x, y = tile_at(*CENTRES[HAMPSHIRE], 10)
    own = {"force": WEST_MIDLANDS, "period": DECEMBER}
    tile = client.get(f"/tiles/wards/{z}/{x}/{y}.mvt", params=own, headers=analyst)
    assert tile.status_code in (200, 204)
    public = client.get(f"/tiles/wards/{z}/{x}/{y}.mvt", params={"period": DECEMBER})
    figures, small = _withheld_anywhere(tile.content if tile.status_code == 200 else b"")
    assert small == 0, f"{small} Hampshire wards show counts of 1-4 to a West Midlands analyst"
    # Without the force filter the public tile carries Hampshire figures (withheld where small).
    assert _withheld_anywhere(public.content)[0] > 0
    assert tile.headers.get("ETag") != public.headers.get("ETag") or figures == 0

    item = client.get(f"/collections/wards/items/{wards[HAMPSHIRE]}", params=own, headers=analyst)
    if item.status_code == 200:
        properties = item.json()["properties"]
        assert properties.get("withheld") or not (0 < (properties.get("incidents") or 0) <= 4)
        assert "no disclosure control" not in json.dumps(item.json())
    else:
        assert item.status_code in (403, 404)

    summary = client.get(f"/areas/{wards[HAMPSHIRE]}/summary", params=own, headers=analyst)
    if summary.status_code == 200:
        assert "no disclosure control" not in json.dumps(summary.json()), "summary unsuppressed"
    else:
        assert summary.status_code in (403, 404, 422)


# --- authentication --------------------------------------------------------------------------------


def test_a_bad_or_revoked_key_is_401_never_public(client: TestClient, engine: Engine) -> None:
    with engine.begin() as conn:
        token = create_key(conn, Role.LEAD, None, "to revoke").token
    assert client.get("/calls", params={"force": HAMPSHIRE}, headers={"X-API-Key": token}).status_code == 200
    with engine.begin() as conn:
        revoke_key(conn, token.split("_")[1])
    revoked = client.get("/health/live", headers={"X-API-Key": token})
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["detail"]
    assert "WWW-Authenticate" in revoked.headers
    forged = token[:-4] + "AAAA"
    assert client.get("/health/live", headers={"X-API-Key": forged}).status_code == 401
    assert client.get("/health/live", headers={"X-API-Key": "not-a-key"}).status_code == 401
    assert client.get("/health/live", headers={"Authorization": "Basic abc"}).status_code == 401


def test_keys_are_stored_hashed(engine: Engine, api_keys: dict[str, str]) -> None:
    token = api_keys["lead"]
    key_id, secret = token.split("_")[1], token.split("_", 2)[2]
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT secret_hash FROM api_keys WHERE key_id = :id"), {"id": key_id}
        ).scalar_one()
        listed = {k.key_id: k for k in list_keys(conn)}
    assert secret not in stored and stored.startswith("$argon2id$")
    assert listed[key_id].role == Role.LEAD


def test_a_key_in_the_bearer_header_works_too(client: TestClient, api_keys: dict[str, str]) -> None:
    response = client.get(
        "/calls", params={"force": HAMPSHIRE}, headers={"Authorization": f"Bearer {api_keys['lead']}"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("name", ["api_key", "token", "access_token", "key", "apikey"])
def test_credentials_in_the_url_are_refused(client: TestClient, api_keys: dict[str, str], name: str) -> None:
    response = client.get("/calls", params={"force": HAMPSHIRE, name: api_keys["lead"]})
    assert response.status_code == 422
    assert response.json()["parameter"] == name
    assert api_keys["lead"] not in response.text


def test_an_analyst_key_needs_a_known_force(engine: Engine) -> None:
    from harmmap.errors import InvalidParameterError, NotFoundError

    with engine.begin() as conn:
        with pytest.raises(InvalidParameterError, match="force"):
            create_key(conn, Role.ANALYST, None)
        with pytest.raises(NotFoundError):
            create_key(conn, Role.ANALYST, "E23000099")
        with pytest.raises(InvalidParameterError):
            create_key(conn, Role.LEAD, HAMPSHIRE)


# --- audit -----------------------------------------------------------------------------------------


def test_the_audit_log_is_append_only(engine: Engine, client: TestClient, api_keys: dict[str, str]) -> None:
    client.get("/calls", params={"force": HAMPSHIRE}, headers=_headers(api_keys, "lead"))
    from sqlalchemy.exc import DBAPIError

    for statement in ("UPDATE audit_log SET rows = 0", "DELETE FROM audit_log", "TRUNCATE audit_log"):
        with engine.begin() as conn, pytest.raises(DBAPIError, match="append-only"):
            conn.execute(text(statement))


def test_audit_never_logs_secrets(engine: Engine) -> None:
    entry = audit.AuditEntry(
        uuid.uuid4().hex,
        __import__("harmmap.access", fromlist=["Principal"]).Principal.anonymous(),
        "read",
        "GET",
        "/x",
        {"token": "hm_secret", "force": HAMPSHIRE, "period": "2018\x00\ud800"},
        None,
        200,
        1,
    )
    with engine.begin() as conn:
        audit.record(conn, entry)
    [row] = _audit_rows(engine, entry.request_id)
    assert row.parameters == {"token": "[not logged]", "force": HAMPSHIRE, "period": "2018\\x00\\ud800"}


# --- limits ----------------------------------------------------------------------------------------


@pytest.fixture
def limited(settings: Settings) -> Iterator[TestClient]:
    strict = settings.model_copy(update={"rate_limit": "5/minute", "max_body_bytes": 1024})
    with TestClient(create_app(strict)) as test_client:
        yield test_client


def test_rate_limit_per_key_answers_429_with_retry_after(
    limited: TestClient, api_keys: dict[str, str]
) -> None:
    lead = _headers(api_keys, "lead")
    statuses = [limited.get("/health/live", headers=lead).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    refused = limited.get("/health/live", headers=lead)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Another key has its own allowance.
    assert limited.get("/health/live", headers=_headers(api_keys, "admin")).status_code == 200


def test_a_body_over_the_cap_is_413(limited: TestClient) -> None:
    response = limited.post("/collections", content=b"x" * 2048, headers={"Content-Type": "text/csv"})
    assert response.status_code == 413
    assert response.json()["parameter"] == "body"


def test_security_headers_and_no_cors_by_default(client: TestClient, api_keys: dict[str, str]) -> None:
    response = client.get("/collections", headers={"Origin": "https://evil.example"})
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert "access-control-allow-origin" not in response.headers
    page = client.get("/map")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    keyed = client.get("/tiles/wards/tilejson.json", headers=_headers(api_keys, "lead"))
    assert "X-API-Key" in keyed.headers["Vary"]


def test_cors_origins_are_configurable(settings: Settings) -> None:
    allowed_origin = "https://maps.example.police.uk"
    with TestClient(create_app(settings.model_copy(update={"cors_origins": [allowed_origin]}))) as cors:
        ok = cors.get("/conformance", headers={"Origin": allowed_origin})
        assert ok.headers["access-control-allow-origin"] == allowed_origin
        other = cors.get("/conformance", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


# --- the key and audit commands ----------------------------------------------------------------------


def test_key_and_audit_commands_end_to_end(
    settings: Settings, client: TestClient, layers: Scheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    """create prints a working key once; list shows it without its secret; revoke stops it; audit shows it."""
    from typer.testing import CliRunner

    from harmmap.cli import cli

    monkeypatch.setenv("HARMMAP_DATABASE_URL", settings.database_url)
    runner = CliRunner()
    label = f"cli-test-{uuid.uuid4().hex[:6]}"
    created = runner.invoke(
        cli, ["keys", "create", "--role", "analyst", "--force", HAMPSHIRE, "--label", label]
    )
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[-1]
    key_id = token.split("_")[1]
    assert token.startswith("hm_") and len(key_id) == 12
    own = client.get(
        "/collections/incidents/items", params={"force": HAMPSHIRE, "limit": 1}, headers={"X-API-Key": token}
    )
    assert own.status_code == 200
    assert own.json()["numberReturned"] == 1

    listed = runner.invoke(cli, ["keys", "list"])
    assert listed.exit_code == 0 and key_id in listed.output and token.split("_")[2] not in listed.output

    revoked = runner.invoke(cli, ["keys", "revoke", key_id])
    assert revoked.exit_code == 0 and f"key {key_id} revoked" in revoked.output
    after = client.get(
        "/collections/incidents/items", params={"force": HAMPSHIRE}, headers={"X-API-Key": token}
    )
    assert after.status_code == 401

    shown = runner.invoke(cli, ["audit", "--action", "keys", "--format", "json", "--limit", "200"])
    assert shown.exit_code == 0, shown.output
    lines = [json.loads(line) for line in shown.stdout.splitlines() if line.strip()]
    entries = [e for e in lines if key_id in json.dumps(e.get("parameters"))]
    assert {e["endpoint"] for e in entries} == {"keys create", "keys revoke"}
    assert all(e["subject"].startswith("cli:") for e in entries)
    reads = runner.invoke(cli, ["audit", "--subject", f"key:{key_id}", "--format", "csv"])
    assert reads.exit_code == 0, reads.output
    read_rows = list(csv.DictReader(io.StringIO(reads.stdout)))
    assert [(r["action"], r["endpoint"], r["status"], r["rows"]) for r in read_rows] == [
        ("read", "/collections/incidents/items", "200", "1")
    ]

    # Bad input: each names what was wrong, and nothing is created.
    no_force = runner.invoke(cli, ["keys", "create", "--role", "analyst"])
    assert no_force.exit_code == 1 and "force" in no_force.output
    bad_force = runner.invoke(cli, ["keys", "create", "--role", "analyst", "--force", "E23000030'--"])
    assert bad_force.exit_code == 1 and "force" in bad_force.output
    unknown = runner.invoke(cli, ["keys", "revoke", "nosuchkey000"])
    assert unknown.exit_code == 1 and "nosuchkey000" in unknown.output
    bad_format = runner.invoke(cli, ["audit", "--format", "xml"])
    assert bad_format.exit_code == 2 and "--format" in bad_format.output
    bad_since = runner.invoke(cli, ["audit", "--since", "yesterday"])
    assert bad_since.exit_code == 2 and "--since" in bad_since.output
