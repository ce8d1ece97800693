"""Engine construction, database creation and migrations for the PostGIS store."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import URL

from harmmap.errors import DatabaseUnavailableError
from harmmap.settings import Settings


def create_db_engine(settings: Settings) -> Engine:
    """Build the pooled engine the service and CLI share.

    ``pool_pre_ping`` lets the service recover by itself when the database comes back after an outage.
    """
    return create_engine(
        settings.db_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        pool_timeout=settings.db_connect_timeout_s,
        connect_args={
            "connect_timeout": settings.db_connect_timeout_s,
            # Enough memory for the aggregate queries to group in memory rather than on disk.
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms} -c work_mem=32MB",
            "application_name": "harmmap",
        },
    )


def _libpq_conninfo(url: URL, database: str | None = None) -> str:
    return url.set(drivername="postgresql", database=database or url.database).render_as_string(
        hide_password=False
    )


def ping_server(url: URL, timeout_s: int = 5) -> str:
    """Connect to the server's maintenance database and return its version string.

    Raises DatabaseUnavailableError with the driver's reason when the server does not answer.
    """
    try:
        with psycopg.connect(
            _libpq_conninfo(url, "postgres"), connect_timeout=timeout_s, autocommit=True
        ) as conn:
            row = conn.execute("SELECT version()").fetchone()
    except psycopg.Error as exc:
        raise DatabaseUnavailableError(f"PostgreSQL at {_safe(url)} does not answer: {exc}") from exc
    return str(row[0]) if row else "unknown"


def ensure_database(url: URL) -> bool:
    """Create the database named in ``url`` if it is missing. Returns True when it was created."""
    assert url.database, "settings validation guarantees a database name"
    with psycopg.connect(_libpq_conninfo(url, "postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,)).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(url.database)))
        return True


def drop_database(url: URL) -> None:
    """Drop the database named in ``url`` (used by tests for scratch databases)."""
    assert url.database
    with psycopg.connect(_libpq_conninfo(url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(url.database)))


def alembic_config(url: URL) -> Config:
    """An Alembic config pointing at the packaged migrations and the given database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(str(files("migrations")))))
    # Alembic's config goes through ConfigParser interpolation, so a literal % must be doubled.
    cfg.set_main_option("sqlalchemy.url", url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def upgrade(url: URL, revision: str = "head") -> None:
    """Run the migrations up to ``revision``."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: URL, revision: str) -> None:
    """Run the migrations down to ``revision`` (``base`` empties the schema)."""
    command.downgrade(alembic_config(url), revision)


def migration_head(url: URL) -> str | None:
    """The newest revision the code knows about."""
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def current_revision(conn: Connection) -> str | None:
    """The revision the connected database is at, or None before the first migration."""
    return MigrationContext.configure(conn).get_current_revision()


def postgis_version(conn: Connection) -> str | None:
    """The installed PostGIS version, or None when the extension is absent."""
    row = conn.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'postgis'")).first()
    return str(row[0]) if row else None


def copy_rows(conn: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Stream rows into ``table`` with COPY on the connection's own transaction.

    ``table`` and ``columns`` must come from code, never from input: callers pass names from their own
    known lists, and they are quoted as identifiers here all the same.
    """
    dbapi = conn.connection.driver_connection
    assert isinstance(dbapi, psycopg.Connection)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    count = 0
    with dbapi.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def _safe(url: URL) -> str:
    return url.render_as_string(hide_password=True)
