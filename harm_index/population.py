"""Census 2021 usual residents by area and broad ethnic group, summed from LSOA 2021.

Every level takes its population through the LSOA 2021 areas' own parent codes, the same route records
take to their ward, LAD and force, so numerators and denominators cover the same places.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Connection, text

from harmmap.errors import InvalidParameterError

POPULATION_SOURCE = "Census 2021 usual residents (ONS TS021), summed from LSOA 2021"
BROAD_GROUPS = ("Asian", "Black", "Mixed", "Other", "White")
COMPARISON_GROUP = "White"
# Area level -> the LSOA 2021 row's column holding that level's code (a fixed list: safe in SQL).
PARENT_COLUMN = {
    "lsoa21": "code",
    "ward": "ward_code",
    "local_authority": "lad_code",
    "force": "force_code",
}


def parent_column(level: str) -> str:
    """The LSOA 2021 column that names an area at ``level``; refuses levels without residents."""
    column = PARENT_COLUMN.get(level)
    if column is None:
        raise InvalidParameterError(
            "level",
            f"{level!r} has no Census population; use one of {', '.join(PARENT_COLUMN)}",
            allowed=list(PARENT_COLUMN),
        )
    return column


def residents_by_group(conn: Connection, level: str, force_code: str) -> dict[str, dict[str, int]]:
    """Residents per area code at ``level`` in the force, by broad group (every group present, 0 if none)."""
    column = parent_column(level)
    rows = conn.execute(
        text(
            # column comes from PARENT_COLUMN, a fixed list
            f"SELECT a.{column} AS code, c.broad_group, sum(c.residents) AS residents FROM areas a "
            "JOIN census2021_ethnicity c ON c.area_level = 'lsoa21' AND c.area_code = a.code "
            "WHERE a.level = 'lsoa21' AND a.force_code = :force GROUP BY 1, 2"
        ),
        {"force": force_code},
    ).all()
    out: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(BROAD_GROUPS, 0))
    for code, group, residents in rows:
        out[code][group] = int(residents)
    return dict(out)


def area_rows(conn: Connection, level: str, force_code: str) -> list[tuple[int, str, str]]:
    """(id, code, name) of the force's areas at a census level (the force itself for ``force``)."""
    if level == "force":
        query = "SELECT id, code, name FROM areas WHERE level = 'force' AND code = :force"
    else:
        query = (
            "SELECT id, code, name FROM areas "
            "WHERE level = CAST(:level AS area_level) AND force_code = :force"
        )
    rows = conn.execute(text(query), {"level": level, "force": force_code})
    return [(int(i), code, name) for i, code, name in rows]


def area_names(conn: Connection, level: str, force_code: str) -> dict[str, str]:
    """Names of the force's areas at a census level."""
    return {code: name for _, code, name in area_rows(conn, level, force_code)}
