"""Contiguity between areas, for spatial smoothing and hot spots."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Connection, text

from geo.levels import AreaLevel
from geo.versions import store_version

# Generalised (BSC) outlines of neighbours can miss each other by a little; within 1 m counts as touching.
TOUCH_TOLERANCE_M = 1.0


_CACHE: dict[tuple[str, str, str], dict[str, list[str]]] = {}


def queen_neighbours(conn: Connection, level: AreaLevel, force_code: str) -> dict[str, list[str]]:
    """Each area's neighbours (sharing an edge or a corner) among the force's areas of ``level``.

    Boundaries change only when they are reloaded, so the answer is kept per boundary version.
    """
    version = store_version(conn, "areas")
    key = (version, level.value, force_code)
    if key not in _CACHE:
        for stale in [k for k in _CACHE if k[0] != version]:
            del _CACHE[stale]
        _CACHE[key] = _contiguity(conn, level, force_code)
    return _CACHE[key]


def _contiguity(conn: Connection, level: AreaLevel, force_code: str) -> dict[str, list[str]]:
    rows = conn.execute(
        text(
            """
            SELECT a.code, b.code
            FROM areas a
            JOIN areas b ON b.level = a.level AND b.force_code = a.force_code AND b.code <> a.code
                        AND ST_DWithin(a.geom, b.geom, :tolerance)
            WHERE a.level = CAST(:level AS area_level) AND a.force_code = :force
            """
        ),
        {"level": level.value, "force": force_code, "tolerance": TOUCH_TOLERANCE_M},
    ).all()
    neighbours: dict[str, list[str]] = defaultdict(list)
    for code, other in rows:
        neighbours[code].append(other)
    return {code: sorted(others) for code, others in neighbours.items()}
