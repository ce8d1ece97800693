"""Check a block's locations and assign its areas, rejecting what cannot be placed, with the reason."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from pyproj import Transformer

from geo.h3cells import H3_RESOLUTIONS
from geo.pip import OUTSIDE
from ingest.batch import LoadContext
from ingest.fields import FloatArray, Mask, Rejects, numbers, quoted

# Generous bounds of Great Britain; points outside are not in any force area harmmap can hold.
GB_LON = (-8.8, 2.0)
GB_LAT = (49.8, 60.95)
BNG_E = (0.0, 700_000.0)
BNG_N = (0.0, 1_300_000.0)

_BNG_TO_WGS84 = Transformer.from_crs(27700, 4326, always_xy=True)
# location_source by whether the row was placed by its LSOA code (False, True).
_LOCATION_SOURCES = pa.array(["point", "lsoa_code"], pa.string())

LOCATED_COLUMNS = (
    "lon",
    "lat",
    "location_source",
    "lsoa11_code",
    "lsoa21_code",
    "ward_code",
    "lad_code",
    "force_code",
    *(f"h3_{r}" for r in H3_RESOLUTIONS),
)


@dataclass(frozen=True)
class Coordinates:
    """The coordinate columns a row may carry, by name, and how they are read."""

    x_field: str
    y_field: str
    crs: int  # 4326 (x = longitude) or 27700 (x = easting)


def locate(
    ctx: LoadContext,
    rejects: Rejects,
    x_text: pa.Array | None,
    y_text: pa.Array | None,
    coords: Coordinates | None,
    lsoa11_codes: pa.Array | None = None,
    lsoa_field: str = "LSOA code",
    any_lsoa_edition: bool = False,
) -> dict[str, pa.Array]:
    """Located columns for every row of a block (values for rejected rows are placeholders)."""
    n = len(rejects.rejected)
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    by_code = np.zeros(n, dtype=bool)
    # A code is null or empty where the record has none.
    has_code = (
        np.asarray(
            pc.fill_null(pc.greater(pc.utf8_length(lsoa11_codes), 0), False).to_numpy(zero_copy_only=False),
            dtype=bool,
        )
        if lsoa11_codes is not None
        else np.zeros(n, bool)
    )
    if coords is not None and x_text is not None and y_text is not None:
        x, x_blank, x_bad = numbers(x_text)
        y, y_blank, y_bad = numbers(y_text)
        both_blank = x_blank & y_blank
        by_code = both_blank & has_code
        rejects.add(both_blank & ~has_code, coords.x_field, "no_location", "no coordinates and no LSOA code")
        rejects.add(
            x_blank & ~y_blank, coords.x_field, "bad_coordinates", f"is blank but {coords.y_field} is not"
        )
        rejects.add(
            y_blank & ~x_blank, coords.y_field, "bad_coordinates", f"is blank but {coords.x_field} is not"
        )
        rejects.add(
            x_bad,
            coords.x_field,
            "bad_coordinates",
            _msg("is not a number: ", quoted(x_text, x_bad), mask=x_bad),
        )
        rejects.add(
            y_bad,
            coords.y_field,
            "bad_coordinates",
            _msg("is not a number: ", quoted(y_text, y_bad), mask=y_bad),
        )
        zero = (x == 0) & (y == 0)
        rejects.add(
            zero,
            coords.x_field,
            "zero_coordinates",
            "coordinates are (0, 0): police.uk zeroes points with no snap point within 20 km",
        )
        with_point = ~rejects.rejected & ~by_code
        if coords.crs == 27700:
            out = with_point & ~(_between(x, BNG_E) & _between(y, BNG_N))
            rejects.add(
                out,
                coords.x_field,
                "out_of_range",
                _pair_msg("is outside the British National Grid", x, y, out),
            )
            ok = with_point & ~out
            lon[ok], lat[ok] = _BNG_TO_WGS84.transform(x[ok], y[ok])
        else:
            lon, lat = x, y
        out = with_point & ~(_between(lon, GB_LON) & _between(lat, GB_LAT))
        rejects.add(out, coords.x_field, "out_of_range", _pair_msg("is outside Great Britain", x, y, out))
    else:
        by_code = has_code
        rejects.add(~has_code, lsoa_field, "no_location", "no coordinates and no LSOA code")

    point_rows = np.flatnonzero(~rejects.rejected & ~by_code)
    code_rows = np.flatnonzero(~rejects.rejected & by_code)
    assigner = ctx.assigner
    lsoa11 = np.full(n, OUTSIDE, dtype=np.int32)
    lsoa21 = np.full(n, OUTSIDE, dtype=np.int32)
    h3 = {f"h3_{r}": np.zeros(n, dtype=np.int64) for r in H3_RESOLUTIONS}
    located = np.zeros(n, dtype=bool)
    if len(point_rows):
        got = assigner.assign_points(lon[point_rows], lat[point_rows])
        lsoa11[point_rows], lsoa21[point_rows] = got.lsoa11, got.lsoa21
        located[point_rows] = got.located
        for name, cells in got.h3.items():
            h3[name][point_rows] = cells
        missed = np.zeros(n, dtype=bool)
        missed[point_rows] = ~got.located
        rejects.add(
            missed,
            coords.x_field if coords else lsoa_field,
            "outside_area",
            _pair_msg("is outside the loaded force areas", lon, lat, missed),
        )
    if len(code_rows) and lsoa11_codes is not None:
        codes = np.asarray(
            lsoa11_codes.take(pa.array(code_rows)).to_numpy(zero_copy_only=False), dtype=object
        )
        got = assigner.assign_lsoa_codes(codes) if any_lsoa_edition else assigner.assign_lsoa11_codes(codes)
        lsoa11[code_rows], lsoa21[code_rows] = got.lsoa11, got.lsoa21
        located[code_rows] = got.located
        missed = np.zeros(n, dtype=bool)
        missed[code_rows] = ~got.located
        rejects.add(
            missed,
            lsoa_field,
            "outside_area",
            _msg(
                "no coordinates, and LSOA ",
                quoted(lsoa11_codes, missed),
                " is not in the loaded force areas",
                mask=missed,
            ),
        )
    areas = assigner.area_columns(lsoa11, lsoa21)
    if ctx.force_code is not None:
        force = np.asarray(areas["force_code"].to_numpy(zero_copy_only=False), dtype=object)
        elsewhere = located & (force != ctx.force_code)
        rejects.add(
            elsewhere,
            coords.x_field if coords else lsoa_field,
            "outside_force",
            _msg("is in force ", force, f", not the declared {ctx.force_code}", mask=elsewhere),
        )

    point = ~by_code
    return {
        "lon": pa.array(np.where(point, lon, np.nan), pa.float64(), mask=~point | np.isnan(lon)),
        "lat": pa.array(np.where(point, lat, np.nan), pa.float64(), mask=~point | np.isnan(lat)),
        "location_source": _LOCATION_SOURCES.take(pa.array(by_code.astype(np.int8))),
        **areas,
        **{name: pa.array(cells, pa.int64(), mask=~(located & point)) for name, cells in h3.items()},
    }


def _between(values: FloatArray, bounds: tuple[float, float]) -> Mask:
    with np.errstate(invalid="ignore"):
        return (values >= bounds[0]) & (values <= bounds[1])


def _pair_msg(what: str, x: FloatArray, y: FloatArray, mask: Mask) -> npt.NDArray[np.object_]:
    out = np.full(len(mask), None, dtype=object)
    out[mask] = [f"point ({a:.6g}, {b:.6g}) {what}" for a, b in zip(x[mask], y[mask], strict=True)]
    return out


def _msg(*parts: object, mask: Mask) -> npt.NDArray[np.object_]:
    """Join string parts and per-row object arrays into one message per row in ``mask``."""
    out = np.full(len(mask), None, dtype=object)
    for i in np.flatnonzero(mask):
        out[i] = "".join(str(p[i]) if isinstance(p, np.ndarray) else str(p) for p in parts)
    return out
