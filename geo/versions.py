"""Which edition of the reference tables a process is looking at, for caches keyed on it.

Each versioned table (boundaries, lookups, Census populations, harm keys) has a counter that a statement
trigger bumps on any change (migration 0008). A cache keyed by these versions is never stale and costs
one primary-key read to check.
"""

from __future__ import annotations

from sqlalchemy import Connection, text


def store_version(conn: Connection, *tables: str) -> str:
    """A key naming this database and the current version of each of ``tables``."""
    rows = conn.execute(
        text(
            "SELECT current_database(), string_agg(name || '=' || version, ',' ORDER BY name) "
            "FROM store_versions WHERE name = ANY(CAST(:tables AS text[])) GROUP BY 1"
        ),
        {"tables": list(tables)},
    ).one_or_none()
    if rows is None:
        return "unversioned"
    return f"{rows[0]}:{rows[1]}"
