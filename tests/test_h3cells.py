"""H3 cells for points and their parents, against the h3 library's own answers."""

from __future__ import annotations

import h3
import numpy as np
import pytest

from geo.h3cells import H3_RESOLUTIONS, cells_to_parents, points_to_cell_columns, points_to_cells


def _points(n: int = 2_000) -> tuple[np.ndarray, np.ndarray]:
    # Great Britain and a spread of the rest of the world, both hemispheres.
    rng = np.random.default_rng(7)
    lon = np.concatenate((rng.uniform(-8.8, 2.0, n), rng.uniform(-180, 180, n)))
    lat = np.concatenate((rng.uniform(49.8, 60.9, n), rng.uniform(-85, 85, n)))
    return lon, lat


def test_points_to_cells_matches_h3() -> None:
    lon, lat = _points()
    cells = points_to_cells(lon, lat, 10)
    expected = [h3.str_to_int(h3.latlng_to_cell(y, x, 10)) for x, y in zip(lon, lat, strict=True)]
    assert cells.tolist() == expected


@pytest.mark.parametrize("finest", [10, 15])
def test_parents_match_h3_at_every_coarser_resolution(finest: int) -> None:
    lon, lat = _points()
    cells = points_to_cells(lon, lat, finest)
    for resolution in range(finest + 1):
        parents = cells_to_parents(cells, resolution)
        expected = [h3.str_to_int(h3.cell_to_parent(h3.int_to_str(int(c)), resolution)) for c in cells]
        assert parents.tolist() == expected, resolution


def test_no_cell_has_no_parent_and_resolution_is_checked() -> None:
    assert cells_to_parents(np.zeros(3, dtype=np.int64), 7).tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="resolution 16"):
        cells_to_parents(np.zeros(1, dtype=np.int64), 16)


def test_cell_columns_are_the_finest_cell_and_its_parents() -> None:
    lon, lat = _points(200)
    columns = points_to_cell_columns(lon, lat)
    assert set(columns) == {f"h3_{r}" for r in H3_RESOLUTIONS}
    for r in H3_RESOLUTIONS:
        assert all(h3.get_resolution(h3.int_to_str(int(c))) == r for c in columns[f"h3_{r}"])
