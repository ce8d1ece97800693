"""Authentication and authorisation at the edge, in one place, for every route.

``authorize_request`` runs for every route (it is the app's global dependency): it reads the caller's
credentials from the headers, applies the per-key rate limit, finds the route's resource in
``ROUTE_ACCESS`` and asks ``harmmap.access.authorize`` for a grant. A route missing from the table is
refused (fail closed), and a test checks the table covers every route. Routes take the grant (or the
principal) and use its disclosure rule; they never decide access themselves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from limits import parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from geo.records import RECORD_COLLECTIONS
from harm_index.maplayers import LAYERS
from harmmap.access import Grant, Principal, Resource, Role, authorize, check_force_code
from harmmap.errors import ForbiddenError, InvalidParameterError, RateLimitedError, UnauthenticatedError
from harmmap.keys import KeyVerifier
from harmmap.oidc import OidcConfig, OidcVerifier
from harmmap.settings import Settings

__all__ = ["Grant", "Principal", "Role", "authorize_request", "get_grant", "get_principal"]

API_KEY_HEADER = "X-API-Key"
# Query parameters that look like credentials: refused, since URLs end up in logs, histories and caches.
CREDENTIAL_PARAMETERS = frozenset(
    {
        "api_key",
        "apikey",
        "api-key",
        "key",
        "token",
        "access_token",
        "id_token",
        "auth",
        "authorization",
        "jwt",
    }
)


def _records_or_aggregate(request: Request) -> Resource:
    collection = request.path_params.get("collectionId", "")
    return Resource.RECORDS if collection in RECORD_COLLECTIONS else Resource.AGGREGATE


def _layer_resource(request: Request) -> Resource:
    layer = request.path_params.get("layer") or request.query_params.get("layer", "")
    spec = LAYERS.get(layer)
    # An unknown layer is the route's 404 to give; as an aggregate it reveals nothing.
    return Resource.FORCE_AGGREGATE if spec is not None and spec.restricted else Resource.AGGREGATE


@dataclass(frozen=True)
class RouteAccess:
    """What a route serves: a resource kind, or a function of the request that says which."""

    resource: Resource | Callable[[Request], Resource]
    export: bool = False

    def resource_for(self, request: Request) -> Resource:
        """The resource this request asks for."""
        return self.resource if isinstance(self.resource, Resource) else self.resource(request)


OPEN = RouteAccess(Resource.OPEN)
AGGREGATE = RouteAccess(Resource.AGGREGATE)
FORCE_HELD = RouteAccess(Resource.FORCE_AGGREGATE)
BY_COLLECTION = RouteAccess(_records_or_aggregate)
BY_LAYER = RouteAccess(_layer_resource)
EXPORT = RouteAccess(_layer_resource, export=True)

# Every route's path (as declared) -> what it serves. The access matrix test walks this table.
ROUTE_ACCESS: dict[str, RouteAccess] = {
    "/": OPEN,
    "/conformance": OPEN,
    "/health": OPEN,
    "/health/live": OPEN,
    "/health/ready": OPEN,
    "/collections": OPEN,
    "/collections/{collectionId}": BY_COLLECTION,
    "/collections/{collectionId}/items": BY_COLLECTION,
    "/collections/{collectionId}/items/{featureId}": BY_COLLECTION,
    "/tiles/{collectionId}/{z}/{x}/{y}.mvt": BY_COLLECTION,
    "/tiles/{collectionId}/tilejson.json": BY_COLLECTION,
    # Boundaries (ONS, OGL): no figures in them.
    "/forces": OPEN,
    "/forces/{code}": OPEN,
    "/areas": OPEN,
    "/areas/{code}/summary": AGGREGATE,
    "/disproportionality": AGGREGATE,
    "/exposure": AGGREGATE,
    "/hotspots": AGGREGATE,
    "/calls": FORCE_HELD,
    "/trauma-scores": FORCE_HELD,
    "/map": OPEN,
    "/map/assets/{name}": OPEN,
    "/map/vendor/{name}": OPEN,
    "/map/catalog": OPEN,
    "/map/layers/{layer}": BY_LAYER,
    "/exports/map.{fmt}": EXPORT,
    "/exports/multiples.{fmt}": EXPORT,
    "/exports/ranking.{fmt}": EXPORT,
    "/exports/table.{fmt}": EXPORT,
    "/admin/uploads": RouteAccess(Resource.ADMIN),
}


class Authenticator:
    """Turns request headers into a principal: an API key, an OIDC bearer token, or anonymous."""

    def __init__(self, settings: Settings) -> None:
        self.keys = KeyVerifier()
        self.oidc = (
            OidcVerifier(
                OidcConfig(
                    jwks_url=settings.oidc_jwks_url,
                    issuer=settings.oidc_issuer,
                    audience=settings.oidc_audience,
                    role_claim=settings.oidc_role_claim,
                    force_claim=settings.oidc_force_claim,
                    refresh_cooldown_s=settings.oidc_refresh_cooldown_s,
                )
            )
            if settings.oidc_jwks_url and settings.oidc_issuer and settings.oidc_audience
            else None
        )

    def principal(self, request: Request) -> Principal:
        """Who the request acts for; UnauthenticatedError for credentials that do not check out."""
        refuse_credentials_in_url(request)
        key = request.headers.get(API_KEY_HEADER)
        bearer = _bearer(request.headers.get("Authorization"))
        if key and bearer:
            raise UnauthenticatedError(f"send either {API_KEY_HEADER} or Authorization, not both")
        if not key and bearer and bearer.startswith("hm_"):
            key = bearer
        if key:
            with request.app.state.engine.connect() as conn:
                return self.keys.principal(conn, key.strip())
        if bearer:
            if self.oidc is None:
                raise UnauthenticatedError("bearer tokens are not accepted here: OIDC is not configured")
            return self.oidc.principal(bearer)
        return Principal.anonymous()


def _bearer(header: str | None) -> str | None:
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthenticatedError("the Authorization header must read 'Bearer <token>'")
    return token.strip()


def refuse_credentials_in_url(request: Request) -> None:
    """Credentials belong in headers: a URL carrying one is refused, whatever it is."""
    for name in request.query_params:
        if name.lower() in CREDENTIAL_PARAMETERS:
            raise InvalidParameterError(
                name,
                f"credentials are never accepted in the URL; send them in the {API_KEY_HEADER} "
                "or Authorization header (and treat this one as exposed)",
            )


class RateLimiter:
    """A moving-window limit per key (per client address for anonymous callers), in this process."""

    def __init__(self, rate: str) -> None:
        self.limits = parse_many(rate)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def check(self, who: str) -> None:
        """Count one request for ``who``; RateLimitedError with the wait when over any limit."""
        for limit in self.limits:
            if not self.limiter.hit(limit, who):
                reset = self.limiter.get_window_stats(limit, who).reset_time
                wait = int(reset - dt.datetime.now(dt.UTC).timestamp()) + 1
                raise RateLimitedError(f"more than {limit} requests; retry after {wait} s", retry_after=wait)


def _route_path(request: Request) -> str:
    route = request.scope.get("route")
    return route.path if isinstance(route, APIRoute) else request.url.path


def authorize_request(request: Request) -> Grant:
    """Authenticate, rate-limit and authorise the request against its route's resource.

    Every outcome that touches restricted data is left on ``request.state`` for the audit middleware,
    refusals included.
    """
    settings: Settings = request.app.state.settings
    state = request.state
    principal = request.app.state.authenticator.principal(request)
    state.principal = principal
    client = request.client.host if request.client else "unknown"
    anonymous = principal.subject == Principal.anonymous().subject
    request.app.state.rate_limiter.check(f"ip:{client}" if anonymous else principal.subject)
    path = _route_path(request)
    rule = request.app.state.route_access.get(path)
    if rule is None:
        raise ForbiddenError(f"{path} has no access rule; refused until it has one")
    resource = rule.resource_for(request)
    force = _force_parameter(request)
    try:
        grant = authorize(principal, resource, force, pilot_forces=settings.pilot_forces, export=rule.export)
    except ForbiddenError:
        state.denied = (principal, force)
        raise
    state.grant = grant
    return grant


def _force_parameter(request: Request) -> str | None:
    """The ``force`` query parameter, checked as the routes' own validators would check it."""
    force = request.query_params.get("force")
    try:
        return check_force_code(force)
    except InvalidParameterError as exc:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "force"), "msg": exc.detail, "input": force}]
        ) from None


def get_grant(grant: Annotated[Grant, Depends(authorize_request)]) -> Grant:
    """The request's grant (``authorize_request`` runs once per request and is cached)."""
    return grant


def get_principal(grant: Annotated[Grant, Depends(authorize_request)]) -> Principal:
    """The request's authenticated principal."""
    return grant.principal
