"""Load the ONS lookups between LSOA11, LSOA21, ward, LAD and force, and derive LSOA11 -> ward.

Every CSV row is accounted for: it is loaded, or collapsed into an identical row (counted), or the whole
file is refused with the line and field of each problem.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from geo.levels import AreaLevel
from geo.manifest import LookupSpec
from geo.sqlfiles import load_sql
from harmmap.db import copy_rows
from harmmap.errors import DataFileError, Problem


@dataclass(frozen=True)
class LookupTable:
    """A lookup table the store knows: its name, key and typed columns."""

    table: str
    key: tuple[str, ...]
    columns: tuple[str, ...]
    code_levels: dict[str, AreaLevel]


# The only tables lookups are written to; manifest kinds are checked against this list.
LOOKUP_TABLES: dict[str, LookupTable] = {
    "lsoa11_lsoa21": LookupTable(
        table="lookup_lsoa11_lsoa21",
        key=("lsoa11_code", "lsoa21_code"),
        columns=("lsoa11_code", "lsoa21_code", "change_code", "lad_code"),
        code_levels={
            "lsoa11_code": AreaLevel.LSOA11,
            "lsoa21_code": AreaLevel.LSOA21,
            "lad_code": AreaLevel.LOCAL_AUTHORITY,
        },
    ),
    "lsoa21_ward": LookupTable(
        table="lookup_lsoa21_ward",
        key=("lsoa21_code",),
        columns=("lsoa21_code", "ward_code", "ward_vintage", "lad_code", "force_code", "best_fit"),
        code_levels={
            "lsoa21_code": AreaLevel.LSOA21,
            "ward_code": AreaLevel.WARD,
            "lad_code": AreaLevel.LOCAL_AUTHORITY,
            "force_code": AreaLevel.FORCE,
        },
    ),
    "lad_force": LookupTable(
        table="lookup_lad_force",
        key=("lad_code",),
        columns=("lad_code", "force_code"),
        code_levels={"lad_code": AreaLevel.LOCAL_AUTHORITY, "force_code": AreaLevel.FORCE},
    ),
}

LSOA11_WARD = LookupTable(
    table="lookup_lsoa11_ward",
    key=("lsoa11_code",),
    columns=(
        "lsoa11_code",
        "ward_code",
        "ward_vintage",
        "lad_code",
        "force_code",
        "best_fit",
        "candidate_wards",
        "lsoa21_share",
    ),
    code_levels={},
)

CHANGE_CODES = frozenset({"U", "S", "M", "X"})


@dataclass(frozen=True)
class CheckedLookup:
    """A lookup file that passed every check, as rows in its table's column order."""

    spec: LookupSpec
    rows: list[tuple[Any, ...]]
    rows_read: int
    duplicates_collapsed: int


@dataclass(frozen=True)
class LookupReport:
    """What loading one lookup did. ``rows_read`` = rows loaded + ``duplicates_collapsed``."""

    file: str
    table: str
    rows_read: int
    duplicates_collapsed: int
    inserted: int
    updated: int
    unchanged: int
    deleted: int


def check_lookup(spec: LookupSpec) -> CheckedLookup:
    """Read a lookup CSV and check every row; raise DataFileError listing every problem."""
    table = LOOKUP_TABLES[spec.kind]
    name = str(spec.path)
    if not spec.path.is_file():
        raise DataFileError([Problem(name, "file", "path", "does not exist")])
    problems: list[Problem] = []
    rows: dict[tuple[str, ...], tuple[tuple[Any, ...], int]] = {}
    rows_read = collapsed = 0
    with spec.path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in spec.columns.values() if c not in header]
        if missing:
            raise DataFileError(
                [Problem(name, "line 1", c, f"missing column; the header has {header}") for c in missing]
            )
        for record in reader:
            rows_read += 1
            line = f"line {reader.line_num}"
            values = {col: (record.get(src) or "").strip() for col, src in spec.columns.items()}
            before = len(problems)
            for col, level in table.code_levels.items():
                if col in values and not level.code_pattern.match(values[col]):
                    problems.append(
                        Problem(
                            name,
                            line,
                            spec.columns[col],
                            f"{values[col]!r} is not a {level.value} GSS code",
                        )
                    )
            if "change_code" in values and values["change_code"] not in CHANGE_CODES:
                problems.append(
                    Problem(
                        name,
                        line,
                        spec.columns["change_code"],
                        f"{values['change_code']!r} is not one of U, S, M, X",
                    )
                )
            if len(problems) > before:
                continue
            if spec.kind == "lsoa21_ward":
                values["ward_vintage"] = spec.ward_vintage or ""
                values["best_fit"] = "true"
            row = tuple(values[c] for c in table.columns)
            key = tuple(values[c] for c in table.key)
            if key in rows:
                first_row, first_line = rows[key]
                if first_row == row:
                    collapsed += 1
                else:
                    problems.append(
                        Problem(
                            name,
                            line,
                            spec.columns[table.key[0]],
                            f"{'/'.join(key)} maps differently at line {first_line}: "
                            f"{_differences(table, first_row, row)}",
                        )
                    )
                continue
            rows[key] = (row, reader.line_num)
    if not rows and not problems:
        problems.append(Problem(name, "file", "rows", "the file has no data rows"))
    if problems:
        raise DataFileError(problems)
    return CheckedLookup(
        spec=spec,
        rows=[row for row, _ in rows.values()],
        rows_read=rows_read,
        duplicates_collapsed=collapsed,
    )


def _differences(table: LookupTable, a: tuple[Any, ...], b: tuple[Any, ...]) -> str:
    return "; ".join(f"{col} {x} vs {y}" for col, x, y in zip(table.columns, a, b, strict=True) if x != y)


def stage_and_upsert_lookup(conn: Connection, lookup: CheckedLookup) -> LookupReport:
    """Replace one lookup table's contents with the checked rows, rewriting only what changed."""
    table = LOOKUP_TABLES[lookup.spec.kind]
    _create_staging(conn, table)
    copy_rows(conn, "staging_lookup", table.columns, lookup.rows)
    inserted, updated, deleted = _upsert_from_staging(conn, table)
    return LookupReport(
        file=lookup.spec.path.name,
        table=table.table,
        rows_read=lookup.rows_read,
        duplicates_collapsed=lookup.duplicates_collapsed,
        inserted=inserted,
        updated=updated,
        unchanged=len(lookup.rows) - inserted - updated,
        deleted=deleted,
    )


def derive_lsoa11_ward(conn: Connection) -> LookupReport:
    """Assign each LSOA11 a ward through its LSOA21 pieces and the best-fit LSOA21 -> ward lookup.

    Unchanged and merged LSOA11s have one LSOA21 and so one ward. A split LSOA11 whose pieces fall in
    different wards takes the ward holding most of its pieces (ties go to the lower ward code); its
    ``candidate_wards`` and ``lsoa21_share`` say how ambiguous that was.
    """
    _create_staging(conn, LSOA11_WARD)
    conn.execute(text(load_sql("lsoa11_ward_derive.sql")))
    rows = conn.execute(text("SELECT count(*) FROM staging_lookup")).scalar_one()
    inserted, updated, deleted = _upsert_from_staging(conn, LSOA11_WARD)
    return LookupReport(
        file="(derived from lsoa11_lsoa21 and lsoa21_ward)",
        table=LSOA11_WARD.table,
        rows_read=int(rows),
        duplicates_collapsed=0,
        inserted=inserted,
        updated=updated,
        unchanged=int(rows) - inserted - updated,
        deleted=deleted,
    )


def _create_staging(conn: Connection, table: LookupTable) -> None:
    # Table names here come from LOOKUP_TABLES / LSOA11_WARD, never from input.
    conn.execute(text("DROP TABLE IF EXISTS pg_temp.staging_lookup"))
    conn.execute(
        text(f"CREATE TEMP TABLE staging_lookup (LIKE {table.table} INCLUDING DEFAULTS) ON COMMIT DROP")
    )


def _upsert_from_staging(conn: Connection, table: LookupTable) -> tuple[int, int, int]:
    cols = ", ".join(table.columns)
    key = ", ".join(table.key)
    rest = [c for c in table.columns if c not in table.key]
    assignments = ", ".join(f"{c} = EXCLUDED.{c}" for c in rest)
    changed = (
        f"({', '.join('t.' + c for c in rest)}) IS DISTINCT FROM ({', '.join('EXCLUDED.' + c for c in rest)})"
    )
    counts = conn.execute(
        text(
            f"WITH upserted AS (INSERT INTO {table.table} AS t ({cols}) "
            f"SELECT {cols} FROM staging_lookup "
            f"ON CONFLICT ({key}) DO UPDATE SET {assignments} WHERE {changed} "
            f"RETURNING (xmax = 0) AS inserted) "
            f"SELECT count(*) FILTER (WHERE inserted) AS inserted, "
            f"count(*) FILTER (WHERE NOT inserted) AS updated FROM upserted"
        )
    ).one()
    match = " AND ".join(f"s.{c} = t.{c}" for c in table.key)
    deleted = conn.execute(
        text(f"DELETE FROM {table.table} t WHERE NOT EXISTS (SELECT 1 FROM staging_lookup s WHERE {match})")
    ).rowcount
    return int(counts.inserted), int(counts.updated), int(deleted)
