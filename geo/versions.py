"""Which edition of the reference tables a process is looking at, for caches keyed on it.

Each versioned table (boundaries, lookups, Census populations, harm keys) has a counter that a statement
trigger bumps on any change (migration 0008). A cache keyed by these versions is never stale and costs
one primary-key read to check.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text


@dataclass(frozen=True)
class StoreVersions:
    """The versions of some reference tables, read in one query."""

    database: str
    versions: dict[str, int]

    def of(self, *tables: str) -> str:
        """A key naming this database and the versions of ``tables`` (a subset of those read)."""
        return self.database + ":" + ",".join(f"{t}={self.versions.get(t)}" for t in sorted(tables))


def store_versions(conn: Connection, *tables: str) -> StoreVersions:
    """The current version of each of ``tables``."""
    rows = conn.execute(
        text(
            "SELECT current_database(), name, version FROM store_versions "
            "WHERE name = ANY(CAST(:tables AS text[]))"
        ),
        {"tables": list(tables)},
    ).all()
    database = rows[0][0] if rows else "unversioned"
    return StoreVersions(database, {name: int(version) for _, name, version in rows})


def store_version(conn: Connection, *tables: str) -> str:
    """A key naming this database and the current version of each of ``tables``."""
    return store_versions(conn, *tables).of(*tables)
