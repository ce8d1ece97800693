"""Assign located records to LSOA11, LSOA21, ward (May 2024), LAD, force and H3 cells.

* With coordinates: point-in-polygon against both LSOA editions. Ward, LAD and force follow the LSOA 2021
  through the ONS best-fit lookup, the same route every LSOA roll-up takes, so point and area totals
  agree. Where generalised outlines leave a point in one edition's polygon but not the other's, the
  missing LSOA comes from the LSOA11<->LSOA21 lookup.
* Without coordinates but with an LSOA 2011 code: the areas come from the code (``location_source`` is
  ``lsoa_code``) and there are no H3 cells.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import shapely
from sqlalchemy import Connection, text

from geo.h3cells import FINEST, FloatArray, points_to_cell_columns
from geo.pip import OUTSIDE, IndexArray, PolygonIndex
from geo.versions import store_version

ObjectArray = npt.NDArray[np.object_]


@dataclass(frozen=True)
class Assignment:
    """Areas for each input record, as indexes into the assigner's LSOA lists (-1 where not located)."""

    lsoa11: IndexArray
    lsoa21: IndexArray
    h3: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)

    @property
    def located(self) -> npt.NDArray[np.bool_]:
        """Records placed in both LSOA editions (and so in a ward, LAD and force)."""
        located: npt.NDArray[np.bool_] = (self.lsoa11 != OUTSIDE) & (self.lsoa21 != OUTSIDE)
        return located


@dataclass(frozen=True)
class Assigner:
    """Everything needed to place records, read once from the store."""

    fingerprint: str
    lsoa11: PolygonIndex
    lsoa21: PolygonIndex
    lsoa11_codes: ObjectArray
    lsoa21_codes: ObjectArray
    lsoa21_ward: ObjectArray
    lsoa21_lad: ObjectArray
    lsoa21_force: ObjectArray
    lsoa11_to_lsoa21: IndexArray
    lsoa21_to_lsoa11: IndexArray

    @classmethod
    def from_store(cls, conn: Connection) -> Assigner:
        """Build (or reuse) the assigner for the areas currently in the store.

        The point index is kept in ``point_index`` for each version of the areas, so only the first load
        after a boundary change builds it; ``conn`` must then be able to write (its transaction keeps it).
        """
        fingerprint = store_version(conn, "areas", "lookup_lsoa11_lsoa21", "lookup_lsoa21_ward")
        cached = _CACHE.get(fingerprint)
        if cached is None:
            cached = cls._build(conn, fingerprint)
            _CACHE.clear()
            _CACHE[fingerprint] = cached
        return cached

    @classmethod
    def _build(cls, conn: Connection, fingerprint: str) -> Assigner:
        l11 = conn.execute(
            text("SELECT code, ST_AsBinary(geom_4326) FROM areas WHERE level = 'lsoa11' ORDER BY code")
        ).all()
        l21 = conn.execute(
            text(
                "SELECT code, ST_AsBinary(geom_4326), ward_code, lad_code, force_code FROM areas "
                "WHERE level = 'lsoa21' ORDER BY code"
            )
        ).all()
        codes11 = np.array([r[0] for r in l11], dtype=object)
        codes21 = np.array([r[0] for r in l21], dtype=object)
        lsoa11, lsoa21, to21, to11 = _point_indexes(
            conn,
            fingerprint,
            _polygons([r[1] for r in l11]),
            _polygons([r[1] for r in l21]),
            codes11,
            codes21,
        )
        return cls(
            fingerprint=fingerprint,
            lsoa11=lsoa11,
            lsoa21=lsoa21,
            lsoa11_codes=codes11,
            lsoa21_codes=codes21,
            lsoa21_ward=np.array([r[2] for r in l21], dtype=object),
            lsoa21_lad=np.array([r[3] for r in l21], dtype=object),
            lsoa21_force=np.array([r[4] for r in l21], dtype=object),
            lsoa11_to_lsoa21=to21,
            lsoa21_to_lsoa11=to11,
        )

    def assign_points(self, lon: FloatArray, lat: FloatArray) -> Assignment:
        """Areas and H3 cells for points already checked to be finite lon/lat in Great Britain."""
        h3 = points_to_cell_columns(lon, lat)
        cells = h3[f"h3_{FINEST}"]
        i11 = self.lsoa11.locate(cells, lon, lat)
        i21 = self.lsoa21.locate(cells, lon, lat)
        only11 = (i21 == OUTSIDE) & (i11 != OUTSIDE)
        i21[only11] = self.lsoa11_to_lsoa21[i11[only11]]
        only21 = (i11 == OUTSIDE) & (i21 != OUTSIDE)
        i11[only21] = self.lsoa21_to_lsoa11[i21[only21]]
        return self._areas(i11, i21, h3)

    def assign_lsoa11_codes(self, codes: ObjectArray) -> Assignment:
        """Areas for records that carry only an LSOA 2011 code (no H3 cells)."""
        i11 = pd.Index(self.lsoa11_codes).get_indexer(pd.Index(codes)).astype(np.int32)
        i21 = np.where(i11 >= 0, self.lsoa11_to_lsoa21[np.maximum(i11, 0)], OUTSIDE).astype(np.int32)
        return self._areas(i11, i21, {})

    def assign_lsoa_codes(self, codes: ObjectArray) -> Assignment:
        """Areas for records carrying an LSOA code of either edition (2021 tried first; no H3 cells).

        An unchanged LSOA keeps its code across editions, so trying 2021 first is only ever a choice
        between the same area's two outlines.
        """
        i21 = pd.Index(self.lsoa21_codes).get_indexer(pd.Index(codes)).astype(np.int32)
        i11 = pd.Index(self.lsoa11_codes).get_indexer(pd.Index(codes)).astype(np.int32)
        from21 = i21 >= 0
        i11 = np.where(from21, self.lsoa21_to_lsoa11[np.maximum(i21, 0)], i11).astype(np.int32)
        i21 = np.where(from21, i21, np.where(i11 >= 0, self.lsoa11_to_lsoa21[np.maximum(i11, 0)], OUTSIDE))
        return self._areas(i11, i21.astype(np.int32), {})

    def _areas(self, i11: IndexArray, i21: IndexArray, h3: dict[str, npt.NDArray[np.int64]]) -> Assignment:
        located = (i11 != OUTSIDE) & (i21 != OUTSIDE)
        return Assignment(
            lsoa11=np.where(located, i11, OUTSIDE).astype(np.int32),
            lsoa21=np.where(located, i21, OUTSIDE).astype(np.int32),
            h3=h3,
        )

    @cached_property
    def _code_tables(self) -> tuple[tuple[str, pa.Array, bool], ...]:
        """Each code column's values as Arrow strings, and whether it is indexed by LSOA 2021."""
        return tuple(
            (name, pa.array(codes, pa.string()) if len(codes) else pa.nulls(1, pa.string()), by21)
            for name, codes, by21 in (
                ("lsoa11_code", self.lsoa11_codes, False),
                ("lsoa21_code", self.lsoa21_codes, True),
                ("ward_code", self.lsoa21_ward, True),
                ("lad_code", self.lsoa21_lad, True),
                ("force_code", self.lsoa21_force, True),
            )
        )

    def area_columns(self, lsoa11: IndexArray, lsoa21: IndexArray) -> dict[str, pa.Array]:
        """The code columns for assigned LSOA indexes; null where an index is -1."""
        # take() over Arrow strings: no Python object per row, which cost ~0.5 s a million rows.
        index11 = pa.array(lsoa11, pa.int32(), mask=lsoa11 == OUTSIDE)
        index21 = pa.array(lsoa21, pa.int32(), mask=lsoa21 == OUTSIDE)
        return {name: table.take(index21 if by21 else index11) for name, table, by21 in self._code_tables}


_CACHE: dict[str, Assigner] = {}


def _point_indexes(
    conn: Connection,
    fingerprint: str,
    polygons11: ObjectArray,
    polygons21: ObjectArray,
    codes11: ObjectArray,
    codes21: ObjectArray,
) -> tuple[PolygonIndex, PolygonIndex, IndexArray, IndexArray]:
    """The two editions' point indexes and representative LSOAs.

    They are read as stored for this version of the areas and lookups, else worked out and stored.
    """
    stored = conn.execute(
        text("SELECT arrays FROM point_index WHERE fingerprint = :f"), {"f": fingerprint}
    ).scalar()
    if stored is not None:
        with np.load(io.BytesIO(stored), allow_pickle=False) as arrays:
            lsoa11 = PolygonIndex.from_arrays(polygons11, arrays, "lsoa11_")
            lsoa21 = PolygonIndex.from_arrays(polygons21, arrays, "lsoa21_")
            if _REPRESENTATIVES <= set(arrays.files):
                return lsoa11, lsoa21, arrays["lsoa11_to_lsoa21"], arrays["lsoa21_to_lsoa11"]
        # Stored before the representatives were kept with it: add them.
    else:
        lsoa11, lsoa21 = PolygonIndex.build(polygons11), PolygonIndex.build(polygons21)
    to21, to11 = _representatives(conn, codes11, codes21)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        allow_pickle=False,
        **lsoa11.arrays("lsoa11_"),
        **lsoa21.arrays("lsoa21_"),
        lsoa11_to_lsoa21=to21,
        lsoa21_to_lsoa11=to11,
    )
    conn.execute(text("DELETE FROM point_index WHERE fingerprint <> :f"), {"f": fingerprint})
    conn.execute(
        text(
            "INSERT INTO point_index (fingerprint, arrays) VALUES (:f, :a) "
            "ON CONFLICT (fingerprint) DO UPDATE SET arrays = EXCLUDED.arrays"
        ),
        {"f": fingerprint, "a": buffer.getvalue()},
    )
    return lsoa11, lsoa21, to21, to11


# Kept with the point index (same fingerprint): reading them there saves a 50 ms query every load.
_REPRESENTATIVES = {"lsoa11_to_lsoa21", "lsoa21_to_lsoa11"}


def _representatives(
    conn: Connection, codes11: ObjectArray, codes21: ObjectArray
) -> tuple[IndexArray, IndexArray]:
    """For each LSOA11 the LSOA21 that stands for it, and the reverse (-1 where none).

    The representative LSOA21 of an LSOA11 lies in the ward that LSOA11 is assigned to; the
    representative LSOA11 of a merged LSOA21 is the first by code.
    """
    pairs = conn.execute(
        text(
            """
            SELECT l.lsoa11_code, l.lsoa21_code,
                   (w.ward_code IS NOT NULL AND w.ward_code = x.ward_code) AS in_chosen_ward
            FROM lookup_lsoa11_lsoa21 l
            LEFT JOIN lookup_lsoa21_ward w ON w.lsoa21_code = l.lsoa21_code
            LEFT JOIN lookup_lsoa11_ward x ON x.lsoa11_code = l.lsoa11_code
            ORDER BY l.lsoa11_code, in_chosen_ward DESC, l.lsoa21_code
            """
        )
    ).all()
    to21 = np.full(len(codes11), OUTSIDE, dtype=np.int32)
    to11 = np.full(len(codes21), OUTSIDE, dtype=np.int32)
    if pairs:
        p11 = pd.Index(codes11).get_indexer(pd.Index([p[0] for p in pairs]))
        p21 = pd.Index(codes21).get_indexer(pd.Index([p[1] for p in pairs]))
        ok = (p11 >= 0) & (p21 >= 0)
        p11, p21 = p11[ok], p21[ok]
        first11 = np.unique(p11, return_index=True)[1]
        to21[p11[first11]] = p21[first11]
        order = np.lexsort((p11, p21))
        first21 = np.unique(p21[order], return_index=True)[1]
        to11[p21[order][first21]] = p11[order][first21]
    return to21, to11


def _polygons(wkb: list[bytes]) -> npt.NDArray[np.object_]:
    return np.asarray(shapely.from_wkb(wkb), dtype=object)
