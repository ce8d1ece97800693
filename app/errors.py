"""The one mapping from errors to HTTP: RFC 9457 ``application/problem+json`` bodies.

A 4xx names the bad parameter and, where there is a fixed set, its allowed values. A 5xx carries only a
request id; the details go to the server log under the same id.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from harmmap.errors import (
    DatabaseUnavailableError,
    DataFileError,
    ForbiddenError,
    HarmmapError,
    InvalidParameterError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    ServiceUnavailableError,
    UnauthenticatedError,
)

log = logging.getLogger("harmmap.http")

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://harmmap.invalid/problems/"
RETRY_AFTER_S = "5"

# Domain error class -> (HTTP status, problem type slug). Most specific first.
STATUS: list[tuple[type[HarmmapError], int, str]] = [
    (NotFoundError, 404, "not-found"),
    (UnauthenticatedError, 401, "unauthenticated"),
    (RateLimitedError, 429, "rate-limited"),
    (PayloadTooLargeError, 413, "payload-too-large"),
    (ForbiddenError, 403, "forbidden"),
    (InvalidParameterError, 422, "invalid-parameter"),
    (DataFileError, 422, "bad-input-file"),
    (DatabaseUnavailableError, 503, "database-unavailable"),
    (ServiceUnavailableError, 503, "service-unavailable"),
    (HarmmapError, 500, "internal-error"),
]


def request_id(request: Request) -> str:
    """The id the request-id middleware gave this request."""
    return str(getattr(request.state, "request_id", "-"))


def problem(
    request: Request,
    status: int,
    slug: str,
    title: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """Build an RFC 9457 problem response."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": str(request.url.path),
        "request_id": request_id(request),
    }
    body.update({k: v for k, v in (extra or {}).items() if v is not None})
    return JSONResponse(
        body, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers) if headers else None
    )


def _status_for(exc: HarmmapError) -> tuple[int, str]:
    for cls, status, slug in STATUS:
        if isinstance(exc, cls):
            return status, slug
    return 500, "internal-error"


async def _harmmap_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HarmmapError)
    status, slug = _status_for(exc)
    if status >= 500:
        log.error(
            "request %s failed: %s",
            request_id(request),
            exc.detail,
            exc_info=exc,
            extra={"request_id": request_id(request)},
        )
        if isinstance(exc, DatabaseUnavailableError):
            return problem(
                request,
                503,
                slug,
                exc.title,
                "The database is unavailable; retry shortly.",
                headers={"Retry-After": RETRY_AFTER_S},
            )
        return _internal(request)
    parameter = getattr(exc, "parameter", None)
    allowed = getattr(exc, "allowed", None)
    invalid = [{"name": parameter, "reason": exc.detail}] if parameter else None
    if isinstance(exc, DataFileError):
        invalid = [
            {"name": p.field, "in": "file", "file": p.file, "where": p.where, "reason": p.reason}
            for p in exc.problems[:100]
        ]
    return problem(
        request,
        status,
        slug,
        exc.title,
        exc.detail,
        headers=_headers_for(exc),
        extra={"parameter": parameter, "allowed": allowed, "invalid-params": invalid},
    )


def _headers_for(exc: HarmmapError) -> dict[str, str] | None:
    if isinstance(exc, UnauthenticatedError):
        return {"WWW-Authenticate": 'Bearer realm="harmmap", ApiKey header="X-API-Key"'}
    if isinstance(exc, RateLimitedError):
        return {"Retry-After": str(exc.retry_after)}
    return None


_QUOTED = re.compile(r"'([^']*)'")


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    invalid: list[dict[str, Any]] = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        where, name = (loc[0], ".".join(loc[1:])) if len(loc) > 1 else ("request", ".".join(loc))
        entry: dict[str, Any] = {
            "name": name,
            "in": where,
            "reason": str(err.get("msg", "invalid")).removeprefix("Value error, "),
        }
        expected = (err.get("ctx") or {}).get("expected")
        if err.get("type") == "enum" and isinstance(expected, str):
            entry["allowed"] = _QUOTED.findall(expected)
        invalid.append(entry)
    first = invalid[0] if invalid else {"name": "request", "reason": "invalid"}
    detail = "; ".join(f"{p['name']}: {p['reason']}" for p in invalid)
    return problem(
        request,
        422,
        "invalid-parameter",
        "Invalid parameter",
        detail,
        extra={"parameter": first["name"], "allowed": first.get("allowed"), "invalid-params": invalid},
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    detail = str(exc.detail) if exc.status_code < 500 else "internal error"
    return problem(
        request,
        exc.status_code,
        slug,
        detail if exc.status_code < 500 else "Internal error",
        f"{request.method} {request.url.path}: {detail}",
        headers=exc.headers,
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    # Never echo the driver's text: it can carry SQL, schema names and values.
    log.error("request %s: database error", request_id(request), exc_info=exc)
    assert isinstance(exc, DBAPIError)
    if exc.connection_invalidated or isinstance(exc, OperationalError):
        return problem(
            request,
            503,
            "database-unavailable",
            "Database unavailable",
            "The database is unavailable; retry shortly.",
            headers={"Retry-After": RETRY_AFTER_S},
        )
    return _internal(request)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("request %s: unhandled error", request_id(request), exc_info=exc)
    return _internal(request)


def _internal(request: Request) -> JSONResponse:
    return problem(
        request,
        500,
        "internal-error",
        "Internal error",
        f"The server could not complete the request; quote request id {request_id(request)}.",
    )


def add_exception_handlers(app: FastAPI) -> None:
    """Install the one error mapping on ``app``."""
    app.add_exception_handler(HarmmapError, _harmmap_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
