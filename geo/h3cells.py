"""H3 cells for points, as BIGINT-compatible integers (the ``h3.api.basic_int`` representation).

This is the one place where coordinates change order: harmmap passes (lon, lat) everywhere, H3 takes
(lat, lng).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
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


# An H3 cell index holds its resolution in bits 52-55 and one 3-bit digit per resolution 1-15 below
# bit 45; digits finer than the cell's resolution are 7. A parent is the same index with the resolution
# field lowered and the finer digits set to 7: two bit operations, twenty times faster than a library
# call per cell, and tested against h3's cell_to_parent.
_RESOLUTION_BITS = np.uint64(0xF << 52)


def cells_to_parents(cells: CellArray, resolution: int) -> CellArray:
    """The parent of each cell (of ``resolution`` or finer) at ``resolution``; 0 stays 0 (no cell)."""
    if not 0 <= resolution <= 15:
        raise ValueError(f"H3 resolution {resolution} is not 0-15")
    index = cells.view(np.uint64)
    unused_digits = np.uint64((1 << (3 * (15 - resolution))) - 1)
    parents = (index & ~_RESOLUTION_BITS) | np.uint64(resolution << 52) | unused_digits
    return np.where(index == 0, np.uint64(0), parents).view(np.int64)


def points_to_cell_columns(lon: FloatArray, lat: FloatArray) -> dict[str, CellArray]:
    """Cells at every stored resolution, keyed ``h3_7`` ... ``h3_10``."""
    finest = points_to_cells(lon, lat, FINEST)
    columns = {f"h3_{FINEST}": finest}
    for resolution in H3_RESOLUTIONS[:-1]:
        columns[f"h3_{resolution}"] = cells_to_parents(finest, resolution)
    return columns
