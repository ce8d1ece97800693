"""Read, check and load boundary layers into the ``areas`` table.

A layer is checked in full before anything is written, and it is written inside a savepoint, so a bad
file never leaves a partial load behind. Geometry is repaired with PostGIS ``ST_MakeValid`` and the
repairs are counted; a geometry that cannot be repaired into a polygon stops the load.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pyogrio.raw
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError
from sqlalchemy import Connection, text

from geo.levels import AreaLevel
from geo.manifest import PARENT_COLUMNS, LayerSpec
from geo.sqlfiles import load_sql
from harmmap.db import copy_rows
from harmmap.errors import DataFileError, Problem

BNG = CRS.from_epsg(27700)
WGS84 = CRS.from_epsg(4326)

# Generous envelopes of Great Britain in each accepted CRS: a coordinate outside one means the file's
# declared CRS is not the one its coordinates are in.
_ENVELOPES: dict[int, tuple[float, float, float, float]] = {
    4326: (-9.0, 49.0, 3.0, 61.5),
    # The grid's south-west corner is open sea: Scilly, the most south-westerly land, lies near
    # (83 km, 5 km). So degrees mistaken for metres (|x| < 180, |y| < 90) always fail this envelope.
    27700: (1_000.0, 1_000.0, 700_000.0, 1_300_000.0),
}

_POLYGONAL = {"Polygon", "MultiPolygon"}


@dataclass(frozen=True)
class AreaRecord:
    """One checked feature, ready to stage."""

    feature_no: int
    code: str
    name: str
    force_code: str | None
    lad_code: str | None
    ward_code: str | None
    wkb: bytes


@dataclass(frozen=True)
class CheckedLayer:
    """A layer that passed every file-level check."""

    spec: LayerSpec
    srid: int
    records: list[AreaRecord]


@dataclass(frozen=True)
class LayerReport:
    """What loading one layer did. ``features`` = inserted + updated + unchanged."""

    file: str
    level: str
    vintage: str
    features: int
    inserted: int
    updated: int
    unchanged: int
    deleted: int
    repaired: int


def check_layer(spec: LayerSpec) -> CheckedLayer:
    """Read a boundary file and check it; raise DataFileError listing every problem found."""
    name = str(spec.path)
    if not spec.path.is_file():
        raise DataFileError([Problem(name, "file", "path", "does not exist")])
    srid = _declared_srid(spec.path)
    try:
        meta, _fids, geometries, field_data = pyogrio.raw.read(spec.path, return_fids=True)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise DataFileError([Problem(name, "file", "format", f"cannot be read: {exc}")]) from None

    fields = [str(f) for f in meta["fields"]]
    wanted = {spec.code_field: "code", spec.name_field: "name"} | {
        column: f"{parent.value} parent code" for parent, column in spec.parents.items()
    }
    missing = [
        Problem(name, "properties", column, f"missing {role} column; the file has {fields}")
        for column, role in wanted.items()
        if column not in fields
    ]
    if missing:
        raise DataFileError(missing)
    columns = {f: field_data[i] for i, f in enumerate(fields)}

    problems: list[Problem] = []
    records: list[AreaRecord] = []
    first_seen: dict[str, int] = {}
    shapes = shapely.from_wkb(geometries, on_invalid="ignore")
    for i, (wkb, shape) in enumerate(zip(geometries, shapes, strict=True)):
        feature_no = i + 1
        code = _text(columns[spec.code_field][i])
        where = f"feature {feature_no}" + (f" ({code})" if code else "")
        before = len(problems)
        if not spec.level.code_pattern.match(code):
            problems.append(
                Problem(name, where, spec.code_field, f"{code!r} is not a {spec.level.value} GSS code")
            )
        elif code in first_seen:
            problems.append(
                Problem(
                    name,
                    where,
                    spec.code_field,
                    f"duplicate code {code}, first seen at feature {first_seen[code]}",
                )
            )
        else:
            first_seen[code] = feature_no
        area_name = _text(columns[spec.name_field][i])
        if not area_name:
            problems.append(Problem(name, where, spec.name_field, "is empty"))
        parents: dict[AreaLevel, str] = {}
        for parent, column in spec.parents.items():
            value = _text(columns[column][i])
            if not parent.code_pattern.match(value):
                problems.append(Problem(name, where, column, f"{value!r} is not a {parent.value} GSS code"))
            parents[parent] = value
        problems.extend(_geometry_problems(name, where, srid, wkb, shape))
        if len(problems) == before:
            records.append(
                AreaRecord(
                    feature_no=feature_no,
                    code=code,
                    name=area_name,
                    force_code=parents.get(AreaLevel.FORCE),
                    lad_code=parents.get(AreaLevel.LOCAL_AUTHORITY),
                    ward_code=parents.get(AreaLevel.WARD),
                    wkb=bytes(wkb),
                )
            )
    if not records and not problems:
        problems.append(Problem(name, "file", "features", "the file has no features"))
    if problems:
        raise DataFileError(problems)
    return CheckedLayer(spec=spec, srid=srid, records=records)


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value).strip()


def _declared_srid(path: Path) -> int:
    """The EPSG code the file declares, if it is one harmmap accepts.

    RFC 7946 lets GeoJSON omit its CRS, but a boundary file whose CRS nobody wrote down is exactly how
    British National Grid coordinates end up read as degrees, so harmmap insists on a declaration.
    """
    name = str(path)
    declared: str | None
    if path.suffix.lower() in {".geojson", ".json"}:
        try:
            with path.open(encoding="utf-8") as fh:
                doc = json.load(fh)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataFileError([Problem(name, "file", "format", f"is not JSON: {exc}")]) from None
        crs_member = doc.get("crs") if isinstance(doc, dict) else None
        declared = (crs_member or {}).get("properties", {}).get("name") if crs_member else None
    else:
        declared = pyogrio.read_info(path).get("crs")
    if not declared:
        raise DataFileError(
            [Problem(name, "file", "crs", "no CRS is declared; declare EPSG:4326 or EPSG:27700")]
        )
    try:
        crs = CRS.from_user_input(declared)
    except CRSError:
        raise DataFileError(
            [Problem(name, "file", "crs", f"declared CRS {declared!r} is not recognised")]
        ) from None
    if crs.equals(BNG):
        return 27700
    if crs.equals(WGS84, ignore_axis_order=True):
        return 4326
    raise DataFileError(
        [
            Problem(
                name,
                "file",
                "crs",
                f"declared CRS {declared!r} is not supported; use EPSG:4326 (CRS84) or EPSG:27700",
            )
        ]
    )


def _geometry_problems(name: str, where: str, srid: int, wkb: bytes | None, shape: Any) -> Iterator[Problem]:
    if wkb is None:
        yield Problem(name, where, "geometry", "has no geometry")
        return
    if shape is None:
        yield Problem(name, where, "geometry", "cannot be parsed as a geometry")
        return
    if shape.geom_type not in _POLYGONAL:
        yield Problem(name, where, "geometry", f"is a {shape.geom_type}, not a polygon")
        return
    if shape.is_empty:
        yield Problem(name, where, "geometry", "is empty")
        return
    short = _shortest_ring(shape)
    if short < 4:
        # GEOS and PostGIS cannot even build such a ring, so ST_MakeValid never gets to see it.
        yield Problem(
            name,
            where,
            "geometry",
            f"has a ring of {short} points (at least 4 needed); it cannot be repaired",
        )
        return
    xmin, ymin, xmax, ymax = shape.bounds
    exmin, eymin, exmax, eymax = _ENVELOPES[srid]
    if xmin < exmin or ymin < eymin or xmax > exmax or ymax > eymax:
        yield Problem(
            name,
            where,
            "crs",
            f"coordinates ({xmin:.6g}, {ymin:.6g}, {xmax:.6g}, {ymax:.6g}) lie outside Great "
            f"Britain in the declared EPSG:{srid}; the declared CRS looks wrong",
        )


def _shortest_ring(shape: Any) -> int:
    polygons = shape.geoms if shape.geom_type == "MultiPolygon" else [shape]
    return min(len(ring.coords) for polygon in polygons for ring in [polygon.exterior, *polygon.interiors])


def stage_and_upsert(conn: Connection, layer: CheckedLayer) -> LayerReport:
    """Write one checked layer into ``areas``; the caller owns the transaction.

    Raises DataFileError naming each feature whose geometry ``ST_MakeValid`` cannot turn into a polygon,
    or whose parent codes are not loaded.
    """
    spec = layer.spec
    conn.execute(text("DROP TABLE IF EXISTS pg_temp.staging_areas"))
    conn.execute(text(load_sql("staging_areas_create.sql")))
    copy_rows(
        conn,
        "staging_areas",
        ("feature_no", "code", "name", "force_code", "lad_code", "ward_code", "wkb"),
        ((r.feature_no, r.code, r.name, r.force_code, r.lad_code, r.ward_code, r.wkb) for r in layer.records),
    )
    conn.execute(text(load_sql("staging_areas_repair.sql")), {"srid": layer.srid})

    name = str(spec.path)
    unrepairable = conn.execute(text(load_sql("staging_areas_unrepairable.sql"))).all()
    problems = [
        Problem(
            name,
            f"feature {row.feature_no} ({row.code})",
            "geometry",
            f"is not valid ({row.reason}) and ST_MakeValid cannot repair it into a polygon",
        )
        for row in unrepairable
    ]
    problems += _orphans(conn, spec)
    if problems:
        raise DataFileError(problems)

    params = {"level": spec.level.value, "vintage": spec.vintage, "source": spec.source}
    counts = conn.execute(text(load_sql("areas_upsert.sql")), params).one()
    deleted = conn.execute(text(load_sql("areas_delete_missing.sql")), params).rowcount
    repaired = conn.execute(text("SELECT count(*) FROM staging_areas WHERE repaired")).scalar_one()
    features = len(layer.records)
    return LayerReport(
        file=spec.path.name,
        level=spec.level.value,
        vintage=spec.vintage,
        features=features,
        inserted=counts.inserted,
        updated=counts.updated,
        unchanged=features - counts.inserted - counts.updated,
        deleted=deleted,
        repaired=int(repaired),
    )


def _orphans(conn: Connection, spec: LayerSpec) -> list[Problem]:
    """Parent codes in the staged layer that name no loaded area of the parent level."""
    problems: list[Problem] = []
    for parent, file_column in spec.parents.items():
        # The column comes from PARENT_COLUMNS, a fixed list, never from the manifest.
        column = PARENT_COLUMNS[parent]
        rows = conn.execute(
            text(
                f"SELECT s.feature_no, s.code, s.{column} AS parent FROM staging_areas s "
                f"WHERE NOT EXISTS (SELECT 1 FROM areas a WHERE a.level = CAST(:level AS area_level)"
                f" AND a.code = s.{column}) ORDER BY s.feature_no LIMIT 50"
            ),
            {"level": parent.value},
        ).all()
        problems += [
            Problem(
                str(spec.path),
                f"feature {r.feature_no} ({r.code})",
                file_column,
                f"{parent.value} {r.parent} is not loaded; load its layer first",
            )
            for r in rows
        ]
    return problems
