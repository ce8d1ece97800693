"""Which edition of the reference tables a process is looking at, for caches keyed on it.

Each versioned table (boundaries, lookups, Census populations, harm keys) has a counter that a statement
trigger bumps on any change (migration 0008). A cache keyed by these versions is never stale and costs
one primary-key read to check. The key names the database by name and OID: a database dropped and
created again under the same name starts its counters afresh, and would otherwise repeat the old keys
(a process kept its point index for the old database, and never stored it in the new one).
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
            "SELECT d.datname || '#' || d.oid, s.name, s.version FROM pg_database d "
            "LEFT JOIN store_versions s ON s.name = ANY(CAST(:tables AS text[])) "
            "WHERE d.datname = current_database()"
        ),
        {"tables": list(tables)},
    ).all()
    return StoreVersions(rows[0][0], {name: int(version) for _, name, version in rows if name is not None})


def store_version(conn: Connection, *tables: str) -> str:
    """A key naming this database and the current version of each of ``tables``."""
    return store_versions(conn, *tables).of(*tables)
