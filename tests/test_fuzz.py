"""Fuzzing the API from its own OpenAPI document: schemathesis cases, and hostile strings everywhere.

No generated or hostile request may get a 5xx, and the store must be intact afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode
from sqlalchemy import Engine, text

from app.main import create_app
from harm_index.weights import Scheme
from harmmap.settings import Settings

# Examples per operation and generation mode: 28 operations x 2 modes x 32, less what operations
# without parameters cannot vary, is over 1,000 cases.
EXAMPLES = 32
MINIMUM_CASES = 1_000
HOSTILE = (
    "' OR 1=1--",
    "'; DROP TABLE areas;--",
    '" OR ""="',
    "1; SELECT pg_sleep(5)",
    "../../../../etc/passwd",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%00",
    "<script>alert(1)</script>",
    "${jndi:ldap://x}",
    "E23000030' UNION SELECT secret_hash FROM api_keys--",
    "\u202e\u0000",
    "9" * 400,
)


@pytest.fixture(scope="module")
def fuzz_app(settings: Settings, layers: Scheme) -> Iterator[FastAPI]:
    app = create_app(settings)
    with TestClient(app):  # runs the lifespan: the engine the cases use
        yield app


def _store_intact(engine: Engine) -> None:
    with engine.connect() as conn:
        for table in ("areas", "crimes", "api_keys", "audit_log", "ingest_batches"):
            assert conn.execute(text("SELECT to_regclass(:t)"), {"t": table}).scalar_one() is not None
        assert conn.execute(text("SELECT count(*) FROM areas")).scalar_one() > 0


def test_schemathesis_cases_never_get_a_5xx(
    fuzz_app: FastAPI, engine: Engine, api_keys: dict[str, str]
) -> None:
    """Every operation in the OpenAPI document, positive and negative cases, as an analyst (admin for
    uploads), so the generated requests reach the data and not only the access check."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    counts: dict[str, int] = {}
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        key = api_keys["admin"] if operation.path.startswith("/admin") else api_keys["analyst-hampshire"]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            label = f"{operation.label} [{mode.value}]"
            counts[label] = 0

            _fuzz(operation, mode, key, label, counts, failures)
    assert failures == [], "\n".join(failures[:20])
    total = sum(counts.values())
    assert total >= MINIMUM_CASES, f"only {total} cases were generated"
    _store_intact(engine)


def _fuzz(
    operation: Any, mode: GenerationMode, key: str, label: str, counts: dict[str, int], failures: list[str]
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    def run(case: Any) -> None:
        counts[label] += 1
        response = case.call(headers={**(case.headers or {}), "X-API-Key": key})
        if response.status_code >= 500:
            failures.append(f"{label}: {response.status_code} {case.path_parameters} {case.query}")

    try:
        run()
    except Unsatisfiable:
        # An operation without parameters has no negative cases to make.
        assert mode == GenerationMode.NEGATIVE and counts[label] == 0, label


def _operations(app: FastAPI) -> list[tuple[str, str, list[dict[str, Any]]]]:
    spec = app.openapi()
    found = []
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            found.append((method.upper(), path, operation.get("parameters", [])))
    return found


def test_hostile_strings_in_every_parameter_get_a_4xx_or_nothing(
    fuzz_app: FastAPI, engine: Engine, api_keys: dict[str, str]
) -> None:
    """Each parameter of each operation, in turn, carries each hostile string; the others stay valid."""
    failures = []
    tried = 0
    with TestClient(fuzz_app) as client:
        client.headers["X-API-Key"] = api_keys["analyst-hampshire"]
        for method, path, parameters in _operations(fuzz_app):
            valid_path = {"collectionId": "wards", "z": "10", "x": "507", "y": "343", "code": "E23000030"}
            valid_path |= {"featureId": "E05002441", "layer": "harm_rate", "fmt": "csv", "name": "map.js"}
            for parameter in parameters:
                for hostile in HOSTILE:
                    url = path
                    query: dict[str, str] = {"force": "E23000030"} if "/exports" in path else {}
                    for p in parameters:
                        if p["in"] == "path":
                            value = (
                                hostile if p["name"] == parameter["name"] else valid_path.get(p["name"], "x")
                            )
                            url = url.replace("{" + p["name"] + "}", quote(value, safe=""))
                    if parameter["in"] == "query":
                        query[parameter["name"]] = hostile
                    elif parameter["in"] != "path":
                        continue
                    response = client.request(method, url, params=query)
                    tried += 1
                    # Markup or quotes echoed back unescaped would be an injection into the client.
                    markup = any(c in hostile for c in "<>'\"$")
                    reflected = markup and parameter["in"] == "query" and hostile in response.text
                    if response.status_code >= 500 or (response.status_code == 200 and reflected):
                        failures.append(f"{method} {url} {query}: {response.status_code}")
    assert tried > 500
    assert failures == [], "\n".join(failures[:20])
    _store_intact(engine)
