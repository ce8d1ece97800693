"""OIDC bearer tokens against a real JWKS endpoint: a local identity provider with its own RSA keys.

The provider is an HTTP server on 127.0.0.1 serving a JWKS document; tokens are signed with PyJWT. Every
way a token can be wrong is refused with a 401 that says why, and never treated as public.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from app.main import create_app
from harm_index.weights import Scheme
from harmmap.settings import Settings

HAMPSHIRE = "E23000030"
WEST_MIDLANDS = "E23000014"
ISSUER = "https://idp.test.police.uk/realms/harmmap"
AUDIENCE = "harmmap-api"


@dataclass
class Provider:
    """A local identity provider: its keys, the JWKS it publishes, and how often that was fetched."""

    url: str
    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    fetches: int = 0

    def jwks(self) -> dict[str, Any]:
        published = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            published.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": published}

    def token(self, kid: str = "k1", key: rsa.RSAPrivateKey | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300, **claims}
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key or self.keys[kid], algorithm="RS256", headers={"kid": kid})


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    state: dict[str, Provider] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            idp = state["idp"]
            if self.path != "/jwks.json":
                self.send_error(404)
                return
            idp.fetches += 1
            body = json.dumps(idp.jwks()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["idp"] = Provider(url=f"http://127.0.0.1:{server.server_address[1]}/jwks.json", keys={"k1": _rsa()})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["idp"]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def oidc_client(settings: Settings, provider: Provider, layers: Scheme) -> Iterator[TestClient]:
    configured = settings.model_copy(
        update={
            "oidc_jwks_url": provider.url,
            "oidc_issuer": ISSUER,
            "oidc_audience": AUDIENCE,
            # The default 30 s between forced re-fetches would make the rotation test wait.
            "oidc_refresh_cooldown_s": 0.0,
        }
    )
    with TestClient(create_app(configured)) as test_client:
        yield test_client


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_analyst_token_sees_its_own_forces_points_and_is_audited(
    oidc_client: TestClient, provider: Provider, engine: Engine
) -> None:
    token = provider.token(harmmap_role="analyst", harmmap_force=HAMPSHIRE, sub="analyst-7")
    headers = _bearer(token)
    own = oidc_client.get(
        "/collections/incidents/items", params={"force": HAMPSHIRE, "limit": 3}, headers=headers
    )
    assert own.status_code == 200, own.text
    assert own.json()["numberReturned"] == 3
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT subject, role, force_code, action, status, rows FROM audit_log WHERE request_id = :r"
            ),
            {"r": own.headers["X-Request-ID"]},
        ).one()
    assert tuple(row) == ("oidc:analyst-7", "analyst", HAMPSHIRE, "read", 200, 3)

    other = oidc_client.get(
        "/collections/incidents/items", params={"force": WEST_MIDLANDS}, headers=_bearer(token)
    )
    assert other.status_code == 403
    assert other.json()["parameter"] == "force"


def test_a_lead_token_reads_force_held_aggregates(oidc_client: TestClient, provider: Provider) -> None:
    token = provider.token(harmmap_role="lead")
    response = oidc_client.get(
        "/calls", params={"force": WEST_MIDLANDS, "period": "2018-12"}, headers=_bearer(token)
    )
    assert response.status_code == 200, response.text
    anonymous = oidc_client.get("/calls", params={"force": WEST_MIDLANDS, "period": "2018-12"})
    assert anonymous.status_code == 403


@pytest.mark.parametrize(
    ("claims", "says"),
    [
        ({"harmmap_role": "analyst", "harmmap_force": HAMPSHIRE, "exp": int(time.time()) - 3600}, "expired"),
        ({"harmmap_role": "analyst", "harmmap_force": HAMPSHIRE, "aud": "someone-else"}, "audience"),
        ({"harmmap_role": "analyst", "harmmap_force": HAMPSHIRE, "iss": "https://evil.example"}, "issuer"),
        ({"harmmap_role": "analyst", "harmmap_force": HAMPSHIRE, "exp": None}, "exp"),
        ({"harmmap_role": "superuser"}, "harmmap_role"),
        ({}, "harmmap_role"),
        ({"harmmap_role": "analyst"}, "harmmap_force"),
        ({"harmmap_role": "analyst", "harmmap_force": "E23000030'; DROP TABLE crimes;--"}, "force code"),
    ],
    ids=[
        "expired",
        "audience",
        "issuer",
        "no-exp",
        "unknown-role",
        "no-role",
        "analyst-no-force",
        "bad-force",
    ],
)
def test_a_bad_token_is_401_saying_why(
    oidc_client: TestClient, provider: Provider, claims: dict[str, Any], says: str
) -> None:
    response = oidc_client.get(
        "/collections/incidents/items", params={"force": HAMPSHIRE}, headers=_bearer(provider.token(**claims))
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert says.lower() in response.json()["detail"].lower()


def test_a_forged_or_unsigned_token_is_401(oidc_client: TestClient, provider: Provider) -> None:
    claims = {"harmmap_role": "analyst", "harmmap_force": HAMPSHIRE}
    # Signed by a key the provider never published, under a published key id.
    forged = provider.token(key=_rsa(), **claims)
    assert (
        oidc_client.get(
            "/collections/incidents/items", params={"force": HAMPSHIRE}, headers=_bearer(forged)
        ).status_code
        == 401
    )
    now = int(time.time())
    unsigned = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": now + 300, **claims},
        key="",
        algorithm="none",
        headers={"kid": "k1"},
    )
    refused = oidc_client.get(
        "/collections/incidents/items", params={"force": HAMPSHIRE}, headers=_bearer(unsigned)
    )
    assert refused.status_code == 401


def test_a_rotated_key_is_fetched_once_seen(oidc_client: TestClient, provider: Provider) -> None:
    provider.keys["k2"] = _rsa()
    before = provider.fetches
    token = provider.token(kid="k2", harmmap_role="lead")
    response = oidc_client.get("/collections/wards", headers=_bearer(token))
    assert response.status_code == 200, response.text
    assert provider.fetches == before + 1
    unknown = provider.token(kid="k9", key=_rsa(), harmmap_role="lead")
    assert oidc_client.get("/collections/wards", headers=_bearer(unknown)).status_code == 401


def test_an_unreachable_identity_provider_is_401_not_public(settings: Settings, layers: Scheme) -> None:
    nowhere = settings.model_copy(
        update={
            "oidc_jwks_url": "http://127.0.0.1:9/jwks.json",
            "oidc_issuer": ISSUER,
            "oidc_audience": AUDIENCE,
        }
    )
    key = _rsa()
    token = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 60, "harmmap_role": "lead"},
        key,
        algorithm="RS256",
        headers={"kid": "k1"},
    )
    with TestClient(create_app(nowhere)) as test_client:
        response = test_client.get("/collections/wards", headers=_bearer(token))
    assert response.status_code == 401
    assert "cannot be fetched" in response.json()["detail"]
