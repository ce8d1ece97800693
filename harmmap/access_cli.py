"""``harmmap keys`` (create, revoke, list) and ``harmmap audit``: run on the server by an operator.

Whoever can run these can already reach the database, so they act as the local admin; every key
command and every ingest is itself written to the audit log under the operating-system user.
"""

from __future__ import annotations

import csv
import datetime as dt
import getpass
import json
import sys
import uuid
from typing import Annotated, Any

import typer
from sqlalchemy import Connection

from harmmap import audit
from harmmap.access import Principal, Role
from harmmap.cli_common import command_engine

keys_cli = typer.Typer(
    help="Create, revoke and list API keys (stored hashed with argon2id).", no_args_is_help=True
)


def operator() -> Principal:
    """The local operator running a command, as the audit log names them."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "unknown"
    return Principal(subject=f"cli:{user}", role=Role.ADMIN)


def audit_command(
    conn: Connection,
    action: str,
    command: str,
    parameters: dict[str, Any],
    *,
    ok: bool,
    rows: int | None,
    force_code: str | None = None,
) -> None:
    """Append a CLI action to the audit log on ``conn``'s transaction (status 0 done, 1 refused)."""
    audit.record(
        conn,
        audit.AuditEntry(
            request_id=f"cli-{uuid.uuid4().hex}",
            principal=operator(),
            action=action,
            method="CLI",
            endpoint=command,
            parameters=parameters,
            target_force=force_code,
            status=0 if ok else 1,
            rows=rows,
        ),
    )


@keys_cli.command("create")
def keys_create(
    role: Annotated[Role, typer.Option("--role", help="public, analyst, lead or admin.")],
    force: Annotated[
        str | None, typer.Option("--force", help="The analyst's force GSS code, e.g. E23000030.")
    ] = None,
    label: Annotated[str, typer.Option("--label", help="Who or what holds the key.")] = "",
) -> None:
    """Create a key and print it once: it is stored only as a hash and cannot be shown again."""
    from harmmap.keys import create_key

    with command_engine() as engine:
        with engine.begin() as conn:
            new = create_key(conn, role, force.strip().upper() if force else None, label)
            audit_command(
                conn,
                "keys",
                "keys create",
                {"key_id": new.key.key_id, "role": str(role), "force": new.key.force_code, "label": label},
                ok=True,
                rows=1,
                force_code=new.key.force_code,
            )
    typer.secho(
        f"key {new.key.key_id}: {role}" + (f" of {new.key.force_code}" if new.key.force_code else ""),
        err=True,
    )
    typer.secho("Send it in the X-API-Key header. It is shown only now: keep it secret.", err=True)
    typer.echo(new.token)


@keys_cli.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key id (the part after hm_).")]) -> None:
    """Revoke a key for good; requests with it are refused at once."""
    from harmmap.keys import revoke_key

    with command_engine() as engine:
        with engine.begin() as conn:
            key = revoke_key(conn, key_id.strip())
            audit_command(conn, "keys", "keys revoke", {"key_id": key.key_id}, ok=True, rows=1)
    typer.echo(f"key {key.key_id} revoked at {key.revoked_at:%Y-%m-%d %H:%M:%S %Z}")


@keys_cli.command("list")
def keys_list() -> None:
    """Every key, newest first, with its role, force and state (never its secret)."""
    from rich.console import Console
    from rich.table import Table

    from harmmap.keys import list_keys

    with command_engine() as engine:
        with engine.connect() as conn:
            keys = list_keys(conn)
    table = Table(title=f"{len(keys)} API key(s)")
    for column in ("key id", "role", "force", "label", "created", "revoked"):
        # Ids and forces are copied into other commands: never wrapped, even in a narrow or piped terminal.
        table.add_column(column, no_wrap=column in ("key id", "force"))
    for k in keys:
        table.add_row(
            k.key_id,
            str(k.role),
            k.force_code or "-",
            k.label,
            f"{k.created_at:%Y-%m-%d %H:%M}",
            f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "-",
        )
    Console(width=max(Console().width, 120)).print(table)


def _when(value: str | None, option: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        typer.secho(
            f"harmmap: {option} {value!r} is not a date or time (YYYY-MM-DD[THH:MM])", fg="red", err=True
        )
        raise typer.Exit(2) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def audit_command_line(
    subject: Annotated[str | None, typer.Option(help="Only this caller, e.g. key:abc123def456.")] = None,
    action: Annotated[str | None, typer.Option(help=f"One of {', '.join(audit.ACTIONS)}.")] = None,
    force: Annotated[str | None, typer.Option("--force", help="The caller's or the requested force.")] = None,
    request_id: Annotated[str | None, typer.Option("--request-id", help="One request.")] = None,
    since: Annotated[str | None, typer.Option(help="From this time (ISO 8601, UTC if no zone).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time.")] = None,
    limit: Annotated[int, typer.Option(help="Newest rows to show.")] = 50,
    output: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Show the audit log: who read restricted data, exported or loaded what, and when."""
    if output not in ("table", "csv", "json"):
        typer.secho("harmmap: --format is table, csv or json", fg="red", err=True)
        raise typer.Exit(2)
    with command_engine() as engine:
        with engine.connect() as conn:
            rows = audit.query(
                conn,
                subject=subject,
                action=action,
                force_code=force.strip().upper() if force else None,
                request_id=request_id,
                since=_when(since, "--since"),
                until=_when(until, "--until"),
                limit=limit,
            )
    columns = (
        "id",
        "at",
        "subject",
        "role",
        "action",
        "method",
        "endpoint",
        "target_force",
        "status",
        "rows",
    )
    if output == "json":
        for r in rows:
            typer.echo(json.dumps({**r.__dict__, "at": r.at.isoformat()}, default=str))
        return
    if output == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow([*columns, "parameters", "request_id"])
        for r in rows:
            writer.writerow([getattr(r, c) for c in columns] + [json.dumps(r.parameters), r.request_id])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"audit log: {len(rows)} row(s), newest first")
    for column in columns:
        table.add_column(column)
    for r in rows:
        table.add_row(
            *[
                f"{r.at:%Y-%m-%d %H:%M:%S}"
                if c == "at"
                else "-"
                if getattr(r, c) is None
                else str(getattr(r, c))
                for c in columns
            ]
        )
    Console(width=200).print(table)
