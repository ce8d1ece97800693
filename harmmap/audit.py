"""The audit log: every restricted read, every export, every ingest and every key change.

Rows are appended and never changed: the table's triggers refuse UPDATE, DELETE and TRUNCATE. The
web layer writes a row before the response leaves (so a read that cannot be audited is not served);
the CLI writes one for each ingest and key command.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from harmmap.access import Principal
from harmmap.errors import InvalidParameterError

ACTIONS = ("read", "export", "ingest", "keys", "denied")
# Parameters that never go into the log, whatever a client sends.
SECRET_PARAMETERS = frozenset({"api_key", "apikey", "key", "token", "access_token", "password", "secret"})
MAX_PARAMETER_CHARS = 400


@dataclass(frozen=True)
class AuditEntry:
    """One audited action."""

    request_id: str
    principal: Principal
    action: str
    method: str
    endpoint: str
    parameters: Mapping[str, Any]
    target_force: str | None
    status: int
    rows: int | None


@dataclass(frozen=True)
class AuditRow:
    """One row of the log, as ``harmmap audit`` shows it."""

    id: int
    at: dt.datetime
    request_id: str
    subject: str
    role: str
    force_code: str | None
    action: str
    method: str
    endpoint: str
    parameters: dict[str, Any]
    target_force: str | None
    status: int
    rows: int | None


def _storable(value: str) -> str:
    """Text jsonb can hold: NUL and unpaired surrogates (hostile input has both) become escapes."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def clean_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters fit for the log: secrets dropped, long values cut, unstorable characters escaped."""
    kept: dict[str, Any] = {}
    for raw_name, value in parameters.items():
        name = _storable(str(raw_name))
        if name.lower() in SECRET_PARAMETERS:
            kept[name] = "[not logged]"
        elif isinstance(value, Mapping):
            kept[name] = clean_parameters(value)
        elif isinstance(value, str):
            text_value = _storable(value)
            cut = len(text_value) > MAX_PARAMETER_CHARS
            kept[name] = text_value[:MAX_PARAMETER_CHARS] + "..." if cut else text_value
        else:
            kept[name] = value
    return kept


def record(conn: Connection, entry: AuditEntry) -> int:
    """Append ``entry`` to the log on ``conn``'s transaction; returns the row id."""
    if entry.action not in ACTIONS:
        raise ValueError(f"unknown audit action {entry.action!r}")
    return int(
        conn.execute(
            text(
                "INSERT INTO audit_log (request_id, subject, role, force_code, action, method, endpoint, "
                "parameters, target_force, status, rows) VALUES (:rid, :subject, :role, :force, :action, "
                ":method, :endpoint, CAST(:params AS jsonb), :target, :status, :rows) RETURNING id"
            ),
            {
                "rid": entry.request_id,
                "subject": entry.principal.subject,
                "role": str(entry.principal.role),
                "force": entry.principal.force_code,
                "action": entry.action,
                "method": _storable(entry.method),
                "endpoint": _storable(entry.endpoint)[:MAX_PARAMETER_CHARS],
                "params": json.dumps(clean_parameters(entry.parameters), default=str),
                "target": entry.target_force,
                "status": entry.status,
                "rows": entry.rows,
            },
        ).scalar_one()
    )


def query(
    conn: Connection,
    *,
    subject: str | None = None,
    action: str | None = None,
    force_code: str | None = None,
    request_id: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 100,
) -> list[AuditRow]:
    """The newest ``limit`` rows matching every filter given.

    ``force_code`` matches the caller's own force or the force the request concerned.
    """
    if action is not None and action not in ACTIONS:
        raise InvalidParameterError("action", f"{action!r} is not an audit action", allowed=ACTIONS)
    if not 1 <= limit <= 100_000:
        raise InvalidParameterError("limit", "limit is 1..100000")
    rows = conn.execute(
        text(
            "SELECT id, at, request_id, subject, role, force_code, action, method, endpoint, parameters, "
            "target_force, status, rows FROM audit_log "
            "WHERE (CAST(:subject AS text) IS NULL OR subject = :subject) "
            "AND (CAST(:action AS text) IS NULL OR action = :action) "
            "AND (CAST(:force AS text) IS NULL OR force_code = :force OR target_force = :force) "
            "AND (CAST(:rid AS text) IS NULL OR request_id = :rid) "
            "AND (CAST(:since AS timestamptz) IS NULL OR at >= :since) "
            "AND (CAST(:until AS timestamptz) IS NULL OR at < :until) "
            "ORDER BY id DESC LIMIT :limit"
        ),
        {
            "subject": subject,
            "action": action,
            "force": force_code,
            "rid": request_id,
            "since": since,
            "until": until,
            "limit": limit,
        },
    )
    return [AuditRow(**row._mapping) for row in rows]
