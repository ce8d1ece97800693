"""Hot spots of harm: Getis-Ord Gi* and local Moran's I, with permutation p-values and FDR control.

Wards and LSOAs use queen contiguity (``geo.neighbours``); H3 cells use their k-ring (k = 1 by default),
over every cell whose centre lies in the force (cells with no recorded harm count as 0, so quiet places
are part of the picture). The statistics come from PySAL (``esda.G_Local`` with ``star=True`` and binary
weights, ``esda.Moran_Local`` with row-standardised weights), 999 conditional permutations with a fixed
seed; significance is judged against the Benjamini-Hochberg false discovery rate threshold
(``esda.fdr``) over all the areas tested, not against 0.05 per area. An area with no neighbours is not
tested, and the output says so.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import esda
import h3
import numpy as np
import pyarrow as pa
from h3ronpy.vector import ContainmentMode, wkb_to_cells
from libpysal.weights import W
from sqlalchemy import Connection, text

from geo.levels import AreaLevel
from geo.neighbours import queen_neighbours
from harm_index.periods import Period
from harm_index.scores import LOCATION_CAVEAT, area_harm
from harm_index.weights import Scheme
from harmmap.errors import InvalidParameterError

LEVELS = ("ward", "lsoa21", "h3_7", "h3_8", "h3_9")
PERMUTATIONS = 999
SEED = 20180401
ALPHA = 0.05
MORAN_CLASSES = {1: "high-high", 2: "low-high", 3: "low-low", 4: "high-low"}


@dataclass
class HotspotResult:
    """Gi* and local Moran classes per area."""

    level: str
    force_code: str
    period: Period
    variable: str
    scheme: str
    scheme_version: str
    fdr_threshold_gi: float | None
    fdr_threshold_moran: float | None
    areas: list[dict[str, Any]] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)
    method: dict[str, Any] = field(default_factory=dict)


def hotspots(
    conn: Connection,
    *,
    level: str,
    force_code: str,
    period: Period,
    scheme: Scheme,
    permutations: int = PERMUTATIONS,
    seed: int = SEED,
    k: int = 1,
) -> HotspotResult:
    """Gi* z-scores, hot/cold classes and local Moran's I classes for the force's areas."""
    if level not in LEVELS:
        raise InvalidParameterError("level", f"{level!r} is not a level for hot spots", allowed=list(LEVELS))
    harm = area_harm(conn, level=level, force_code=force_code, period=period, scheme=scheme)
    if level.startswith("h3"):
        resolution = int(level.split("_")[1])
        values = {a.code: a.harm for a in harm.areas}
        codes = sorted(set(_force_cells(conn, force_code, resolution)) | set(values))
        y = np.array([values.get(c, 0.0) for c in codes])
        neighbours = _ring_neighbours(codes, k)
        variable = "harm per H3 cell (cells are near-equal in area)"
    else:
        rated = {a.code: a.harm_rate for a in harm.areas if a.harm_rate is not None}
        codes = sorted(rated)
        y = np.array([rated[c] for c in codes])
        contiguity = queen_neighbours(conn, AreaLevel(level), force_code)
        neighbours = {c: [n for n in contiguity.get(c, []) if n in rated] for c in codes}
        variable = "harm per 1,000 residents"
    result = HotspotResult(
        level=level,
        force_code=force_code,
        period=period,
        variable=variable,
        scheme=scheme.name,
        scheme_version=scheme.version,
        fdr_threshold_gi=None,
        fdr_threshold_moran=None,
        caveats=[
            LOCATION_CAVEAT,
            "A hot spot is a cluster of places with high recorded harm; it says nothing about the people "
            "who live there.",
        ],
        method={
            "gi_star": f"esda.G_Local(star=True, binary weights), {permutations} permutations, seed {seed}",
            "local_moran": f"esda.Moran_Local (row-standardised), {permutations} permutations, seed {seed}",
            "significance": f"Benjamini-Hochberg FDR at {ALPHA} (esda.fdr) over the areas tested, on "
            "esda's directed pseudo p-values (permutations at least as extreme on the side observed)",
            "weights": "queen contiguity" if not level.startswith("h3") else f"H3 k-ring, k = {k}",
            "variable": variable,
        },
    )
    result.areas, result.fdr_threshold_gi, result.fdr_threshold_moran = local_statistics(
        codes, y, neighbours, permutations, seed
    )
    return result


def local_statistics(
    codes: list[str],
    y: np.ndarray,
    neighbours: dict[str, list[str]],
    permutations: int = PERMUTATIONS,
    seed: int = SEED,
) -> tuple[list[dict[str, Any]], float | None, float | None]:
    """Gi* and local Moran for each area with neighbours; areas without are listed as not tested.

    Returns the areas (sorted by code) and the FDR p-value thresholds for Gi* and local Moran.
    """
    tested = [c for c in codes if neighbours.get(c)]
    areas: list[dict[str, Any]] = [
        {"code": c, "value": float(v), "tested": False, "reason": "no neighbours: not tested"}
        for c, v in zip(codes, y, strict=True)
        if not neighbours.get(c)
    ]
    if len(tested) < 3 or np.ptp(y) == 0:
        areas += [
            {"code": c, "value": float(v), "tested": False, "reason": "too few areas or identical values"}
            for c, v in zip(codes, y, strict=True)
            if neighbours.get(c)
        ]
        return sorted(areas, key=lambda a: a["code"]), None, None
    index = {c: i for i, c in enumerate(codes)}
    y_tested = y[[index[c] for c in tested]]
    weights = W({c: list(neighbours[c]) for c in tested}, ids=tested, silence_warnings=True)
    gi = gi_star(y_tested, weights, permutations, seed)
    with _directed_p_values():
        moran = esda.Moran_Local(
            y_tested, _row_standardised(weights), permutations=permutations, seed=seed, n_jobs=1
        )
    gi_cut = float(esda.fdr(gi.p_sim, ALPHA))
    moran_cut = float(esda.fdr(moran.p_sim, ALPHA))
    for i, code in enumerate(tested):
        significant = bool(gi.p_sim[i] <= gi_cut)
        areas.append(
            {
                "code": code,
                "value": float(y_tested[i]),
                "tested": True,
                "gi_z": float(gi.Zs[i]),
                "gi_p": float(gi.p_sim[i]),
                "gi_class": ("hot spot" if gi.Zs[i] > 0 else "cold spot")
                if significant
                else "not significant",
                "moran_i": float(moran.Is[i]),
                "moran_p": float(moran.p_sim[i]),
                "moran_class": MORAN_CLASSES[int(moran.q[i])]
                if moran.p_sim[i] <= moran_cut
                else "not significant",
            }
        )
    return sorted(areas, key=lambda a: a["code"]), gi_cut, moran_cut


def gi_star(y: np.ndarray, weights: W, permutations: int = PERMUTATIONS, seed: int = SEED) -> Any:
    """Getis-Ord Gi* with binary weights (the area itself included), as esda computes it."""
    with _directed_p_values():
        return esda.G_Local(
            y, weights, transform="B", star=True, permutations=permutations, seed=seed, n_jobs=1
        )


@contextmanager
def _directed_p_values() -> Iterator[None]:
    # esda 2.x warns that its default pseudo p-value (directed: the share of permutations at least as
    # extreme on the side observed) will change; the classes do not yet take the option, and the
    # directed p-value is what the method text states, so the warning is expected here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The alternative hypothesis", DeprecationWarning)
        # Islands of areas (the Isle of Wight's wards) make the weights disconnected; that is expected,
        # and each component is tested against its own neighbours.
        warnings.filterwarnings("ignore", "The weights matrix is not fully connected", UserWarning)
        yield


def _row_standardised(weights: W) -> W:
    copy = W(weights.neighbors, ids=weights.id_order, silence_warnings=True)
    copy.transform = "r"
    return copy


def _ring_neighbours(codes: list[str], k: int) -> dict[str, list[str]]:
    present = set(codes)
    return {c: sorted(n for n in h3.grid_disk(c, k) if n != c and n in present) for c in codes}


def _force_cells(conn: Connection, force_code: str, resolution: int) -> list[str]:
    """H3 cells (hex strings) whose centres lie in the force's outline."""
    wkb = conn.execute(
        text("SELECT ST_AsBinary(geom_4326) FROM areas WHERE level = 'force' AND code = :force"),
        {"force": force_code},
    ).scalar()
    if wkb is None:
        return []
    cells = pa.array(
        wkb_to_cells(
            pa.array([bytes(wkb)], pa.binary()), resolution, containment_mode=ContainmentMode.ContainsCentroid
        )
    )
    flat = np.asarray(cells.flatten(), dtype=np.uint64)
    return [format(int(c), "x") for c in flat]
