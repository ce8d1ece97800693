"""What every request passes through: request ids, body caps, security headers, access logs, audit.

``Edge`` is plain ASGI so it can cap a body as it streams and stamp headers on any response, streamed
ones included. ``audit_requests`` writes the audit row for a restricted read, export or ingest before
the response leaves: a read that cannot be audited is answered 503, not served.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PROBLEM_BASE, PROBLEM_JSON, RETRY_AFTER_S, problem
from harmmap import audit
from harmmap.access import Grant
from harmmap.settings import Settings

access_log = logging.getLogger("harmmap.access")
log = logging.getLogger("harmmap.http")

REQUEST_ID_HEADER = "X-Request-ID"
UPLOAD_PATHS = frozenset({"/admin/uploads"})
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Strict-Transport-Security": "max-age=31536000",
    "Permissions-Policy": "geolocation=(), camera=(), microphone=()",
}
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# FastAPI's own documentation pages load Swagger UI and ReDoc from jsDelivr with an inline script.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https:; "
    "worker-src blob:; frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})


def map_csp(basemap_url: str | None) -> str:
    """The web map page's policy: its own scripts, MapLibre's blob workers, the basemap's origin."""
    basemap = ""
    if basemap_url:
        parts = urlsplit(basemap_url.replace("{", "").replace("}", ""))
        basemap = f" {parts.scheme}://{parts.netloc}"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' data: blob:{basemap}; connect-src 'self'{basemap}; worker-src 'self' blob:; "
        "child-src blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


class Edge:
    """Request id, body cap, security headers and the access log, for every HTTP request."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.map_csp = map_csp(settings.basemap_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stamp, cap and log one request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex
        state: MutableMapping[str, Any] = scope.setdefault("state", {})
        state["request_id"] = rid
        started = time.perf_counter()
        path: str = scope["path"]
        cap = self.settings.max_upload_bytes if path in UPLOAD_PATHS else self.settings.max_body_bytes
        request_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        credentialed = "x-api-key" in request_headers or "authorization" in request_headers
        status = 500

        async def forward(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = rid
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                headers.setdefault("Content-Security-Policy", self._csp(path))
                if credentialed:
                    # A response for a key may hold unsuppressed or force-held figures: no shared cache.
                    cache = headers.get("Cache-Control", "")
                    headers["Cache-Control"] = (
                        cache.replace("public", "private") if cache else "private, no-cache"
                    )
                    headers.append("Vary", "X-API-Key, Authorization")
            await send(message)

        declared = request_headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > cap):
            await _too_large(rid, path, cap, declared)(scope, receive, forward)
            self._log(scope, state, status, started)
            return

        # A body that grows past the cap as it streams: the app is told the client went away, and
        # whatever it answers is replaced by the 413.
        received = 0
        exceeded = False
        answered = False

        async def capped() -> Message:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def stamped(message: Message) -> None:
            nonlocal answered
            if exceeded:
                if message["type"] == "http.response.start" and not answered:
                    answered = True
                    await _too_large(rid, path, cap, f"over {cap}")(scope, receive, forward)
                return
            await forward(message)

        try:
            await self.app(scope, capped, stamped)
        except Exception:
            if not exceeded:
                raise
        finally:
            if exceeded and not answered:
                answered = True
                await _too_large(rid, path, cap, f"over {cap}")(scope, receive, forward)
            self._log(scope, state, status, started)

    def _csp(self, path: str) -> str:
        if path == "/map":
            return self.map_csp
        if path in DOCS_PATHS:
            return DOCS_CSP
        return API_CSP

    @staticmethod
    def _log(scope: Scope, state: MutableMapping[str, Any], status: int, started: float) -> None:
        principal = state.get("principal")
        client = scope.get("client")
        access_log.info(
            "%s %s %s",
            scope["method"],
            scope["path"],
            status,
            extra={
                "request_id": state.get("request_id"),
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "subject": getattr(principal, "subject", None),
                "role": str(getattr(principal, "role", "")) or None,
                "client": client[0] if client else None,
            },
        )


def _too_large(rid: str, path: str, cap: int, declared: str) -> JSONResponse:
    return JSONResponse(
        {
            "type": PROBLEM_BASE + "payload-too-large",
            "title": "Payload too large",
            "status": 413,
            "detail": f"the request body ({declared[:20]} bytes) is over the {cap:,}-byte limit for {path}; "
            "nothing was kept",
            "instance": path,
            "request_id": rid,
            "parameter": "body",
        },
        status_code=413,
        media_type=PROBLEM_JSON,
    )


def _audit_entry(request: Request, status: int) -> audit.AuditEntry | None:
    state = request.state
    grant: Grant | None = getattr(state, "grant", None)
    denied = getattr(state, "denied", None)
    parameters: dict[str, Any] = {**request.path_params, **request.query_params}
    upload = getattr(state, "upload", None)
    if upload:
        parameters["upload"] = upload
    request_id = str(getattr(state, "request_id", "-"))
    if grant is not None and grant.audited:
        return audit.AuditEntry(
            request_id, grant.principal, grant.action, request.method, request.url.path, parameters,
            grant.force_code, status, grant.rows,
        )  # fmt: skip
    if denied is not None:
        principal, force = denied
        return audit.AuditEntry(
            request_id, principal, "denied", request.method, request.url.path, parameters, force, status, None
        )
    return None


def _write(engine: Engine, entry: audit.AuditEntry) -> None:
    with engine.begin() as conn:
        audit.record(conn, entry)


async def audit_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Append the audit row for a restricted read, an export or an ingest; 503 if it cannot be written."""
    response = await call_next(request)
    entry = _audit_entry(request, response.status_code)
    if entry is None:
        return response
    try:
        await run_in_threadpool(_write, request.app.state.engine, entry)
    except Exception:
        log.exception(
            "request %s: the audit row could not be written; refusing the response", entry.request_id
        )
        if response.background is not None:
            await response.background()
        return problem(
            request,
            503,
            "audit-unavailable",
            "Audit unavailable",
            "The audit log cannot be written, so restricted data is not served; retry shortly.",
            headers={"Retry-After": RETRY_AFTER_S},
        )
    return response
