"""H3 cells for points, as BIGINT-compatible integers (the ``h3.api.basic_int`` representation).

This is the one place where coordinates change order: harmmap passes (lon, lat) everywhere, H3 takes
(lat, lng).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from h3ronpy import change_resolution
from h3ronpy.vector import coordinates_to_cells

H3_RESOLUTIONS = (7, 8, 9, 10)
FINEST = max(H3_RESOLUTIONS)

FloatArray = npt.NDArray[np.float64]
CellArray = npt.NDArray[np.int64]


def points_to_cells(lon: FloatArray, lat: FloatArray, resolution: int = FINEST) -> CellArray:
    """The H3 cell of each point at ``resolution``, as int64 (H3 indexes never use the sign bit)."""
    if len(lon) == 0:
        return np.empty(0, dtype=np.int64)
    cells = coordinates_to_cells(lat, lon, resolution)
    return np.asarray(cells, dtype=np.uint64).view(np.int64)


def cells_to_parents(cells: CellArray, resolution: int) -> CellArray:
    """The parent of each cell at a coarser ``resolution``."""
    if len(cells) == 0:
        return np.empty(0, dtype=np.int64)
    parents = change_resolution(cells.view(np.uint64), resolution)
    return np.asarray(parents, dtype=np.uint64).view(np.int64)


def points_to_cell_columns(lon: FloatArray, lat: FloatArray) -> dict[str, CellArray]:
    """Cells at every stored resolution, keyed ``h3_7`` ... ``h3_10``."""
    finest = points_to_cells(lon, lat, FINEST)
    columns = {f"h3_{FINEST}": finest}
    for resolution in H3_RESOLUTIONS[:-1]:
        columns[f"h3_{resolution}"] = cells_to_parents(finest, resolution)
    return columns
