"""Vectorised point-in-polygon keyed by H3 cells.

Every point already gets an H3 cell at load. A cell that lies wholly inside one polygon answers for every
point in it with one sorted-array lookup; only points in cells that touch a boundary are tested exactly
with ``shapely.contains_xy`` against that cell's few candidate polygons. No point geometries are built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from h3ronpy.vector import ContainmentMode, wkb_to_cells

from geo.h3cells import FINEST, CellArray, FloatArray

IndexArray = npt.NDArray[np.int32]
OUTSIDE = -1


def _cells_by_polygon(
    wkb: list[bytes], resolution: int, mode: ContainmentMode
) -> tuple[CellArray, IndexArray]:
    """Flattened (cell, polygon index) pairs for the polygons' cells under ``mode``."""
    nested = pa.array(wkb_to_cells(pa.array(wkb, pa.binary()), resolution, containment_mode=mode))
    cells = np.asarray(pc.list_flatten(nested), dtype=np.uint64).view(np.int64)
    owners = np.asarray(pc.list_parent_indices(nested), dtype=np.int32)
    return cells, owners


@dataclass(frozen=True)
class PolygonIndex:
    """Locate lon/lat points in a fixed set of polygons; built once per load."""

    polygons: npt.NDArray[np.object_]
    interior_cells: CellArray
    interior_owner: IndexArray
    edge_cells: CellArray
    edge_indptr: npt.NDArray[np.int64]
    edge_polygons: IndexArray
    # Hash tables over the two cell lists, built once: a lookup is O(1) per point.
    interior_lookup: pd.Index
    edge_lookup: pd.Index
    resolution: int = FINEST

    @classmethod
    def build(cls, polygons: npt.NDArray[np.object_], resolution: int = FINEST) -> PolygonIndex:
        """Index lon/lat polygons (valid, EPSG:4326) by the H3 cells they contain or touch."""
        shapely.prepare(polygons)
        wkb = list(shapely.to_wkb(polygons))
        inner_cells, inner_owner = _cells_by_polygon(wkb, resolution, ContainmentMode.ContainsBoundary)
        touch_cells, touch_owner = _cells_by_polygon(wkb, resolution, ContainmentMode.IntersectsBoundary)

        # A cell claimed as interior by two polygons (an overlap) is tested exactly instead.
        unique, counts = np.unique(inner_cells, return_counts=True)
        sole = np.isin(inner_cells, unique[counts == 1])
        order = np.argsort(inner_cells[sole], kind="stable")
        interior_cells = inner_cells[sole][order]
        interior_owner = inner_owner[sole][order]

        edge = ~np.isin(touch_cells, interior_cells)
        order = np.lexsort((touch_owner[edge], touch_cells[edge]))
        pair_cells, pair_polygons = touch_cells[edge][order], touch_owner[edge][order]
        edge_cells, starts = np.unique(pair_cells, return_index=True)
        indptr = np.append(starts, len(pair_cells)).astype(np.int64)
        return cls(
            polygons=polygons,
            interior_cells=interior_cells,
            interior_owner=interior_owner,
            edge_cells=edge_cells,
            edge_indptr=indptr,
            edge_polygons=pair_polygons,
            interior_lookup=pd.Index(interior_cells),
            edge_lookup=pd.Index(edge_cells),
            resolution=resolution,
        )

    def arrays(self, prefix: str) -> dict[str, npt.NDArray[Any]]:
        """The index's cell arrays, named with ``prefix``, for storing (the polygons are kept apart)."""
        return {f"{prefix}{name}": getattr(self, name) for name in _ARRAYS}

    @classmethod
    def from_arrays(
        cls, polygons: npt.NDArray[np.object_], arrays: Mapping[str, npt.NDArray[Any]], prefix: str
    ) -> PolygonIndex:
        """The index ``arrays`` stored for these ``polygons`` (in the same order)."""
        shapely.prepare(polygons)
        interior_cells, edge_cells = arrays[f"{prefix}interior_cells"], arrays[f"{prefix}edge_cells"]
        return cls(
            polygons=polygons,
            interior_cells=interior_cells,
            interior_owner=arrays[f"{prefix}interior_owner"],
            edge_cells=edge_cells,
            edge_indptr=arrays[f"{prefix}edge_indptr"],
            edge_polygons=arrays[f"{prefix}edge_polygons"],
            interior_lookup=pd.Index(interior_cells),
            edge_lookup=pd.Index(edge_cells),
        )

    def locate(self, cells: CellArray, lon: FloatArray, lat: FloatArray) -> IndexArray:
        """Index of the polygon containing each point, or -1; ``cells`` are the points' H3 cells."""
        found = np.full(len(cells), OUTSIDE, dtype=np.int32)
        hit, owner = _find(self.interior_lookup, cells)
        found[hit] = self.interior_owner[owner[hit]]

        rest = np.flatnonzero(~hit)
        on_edge, pos = _find(self.edge_lookup, cells[rest])
        points, pos = rest[on_edge], pos[on_edge]
        starts = self.edge_indptr[pos]
        counts = self.edge_indptr[pos + 1] - starts
        # Candidates are in polygon order: test every point against its cell's first candidate, those
        # not inside it against the second, and so on. The first hit is then the lowest index, as for
        # interior cells, and most points stop at the first or second test (a third fewer tests than
        # testing every candidate).
        pending = np.arange(len(points))
        rank = 0
        while len(pending):
            pending = pending[counts[pending] > rank]
            if not len(pending):
                break
            polygon = self.edge_polygons[starts[pending] + rank]
            tested = points[pending]
            inside = shapely.contains_xy(self.polygons[polygon], lon[tested], lat[tested])
            found[tested[inside]] = polygon[inside]
            pending = pending[~inside]
            rank += 1
        return found


_ARRAYS = ("interior_cells", "interior_owner", "edge_cells", "edge_indptr", "edge_polygons")


def _find(index: pd.Index, cells: CellArray) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    """Which ``cells`` are in ``index``, and where (positions only valid where found)."""
    if len(index) == 0:
        return np.zeros(len(cells), dtype=bool), np.zeros(len(cells), dtype=np.int64)
    pos = index.get_indexer(cast(Any, cells))  # pandas-stubs wants an Index; an ndarray is accepted
    hit = pos >= 0
    return hit, np.where(hit, pos, 0)
