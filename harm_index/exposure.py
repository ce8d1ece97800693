"""Harm exposure by ethnic group: the harm rate of the areas where each group's residents live.

For group g in a parent area (ward, LAD or force), over its LSOAs a:

    E_g = sum_a rate_a * pop_{g,a} / sum_a pop_{g,a}

where rate_a is the LSOA 2021's harm per 1,000 residents for the period. This is **area-level exposure**:
the harm recorded in the places people live, not the harm they suffer; harm is placed where crimes
happened. The exposure ratio of Black to White residents, E_Black / E_White, gets a 95% percentile
bootstrap interval: LSOAs are resampled with replacement within the parent (1,000 seeded draws), which
carries the uncertainty from how residents and harm are spread over areas, not the Poisson noise in each
LSOA's rate. With few LSOAs (a ward has about six) the interval is wide and said to be rough.

Where force records carry victim ethnicity, victimisation rates by group per 1,000 residents and their
ratios against White are computed from the records themselves (``victimisation``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Connection, text

from harm_index.disclosure import Disclosure
from harm_index.disparity import group_rate_rows
from harm_index.periods import Period
from harm_index.population import (
    BROAD_GROUPS,
    POPULATION_SOURCE,
    area_names,
    parent_column,
    residents_by_group,
)
from harm_index.scores import LOCATION_CAVEAT, area_harm
from harm_index.weights import Scheme
from harmmap.errors import InvalidParameterError

LEVELS = ("force", "local_authority", "ward")
BOOTSTRAP_DRAWS = 1000
BOOTSTRAP_SEED = 20180401
# Fewer LSOAs than this in a parent and the bootstrap interval is flagged as rough.
FEW_AREAS = 10
EXPOSURE_CAVEATS = [
    "Area-level exposure: the harm recorded in the LSOAs where each group's residents live, not the harm "
    "any person or group suffers.",
    LOCATION_CAVEAT,
    "Never read an area's figures as a statement about the people of any group living there.",
]


@dataclass
class ExposureResult:
    """Exposure per parent area and group, and the Black/White exposure ratio."""

    level: str
    force_code: str
    period: Period
    scheme: str
    scheme_version: str
    areas: list[dict[str, Any]] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)
    method: dict[str, Any] = field(default_factory=dict)


def harm_exposure(
    conn: Connection,
    *,
    level: str,
    force_code: str,
    period: Period,
    scheme: Scheme,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = BOOTSTRAP_SEED,
) -> ExposureResult:
    """Mean LSOA harm rate experienced by each group's residents, per parent area, with the B/W ratio."""
    if level not in LEVELS:
        raise InvalidParameterError("level", f"{level!r} is not a level for exposure", allowed=list(LEVELS))
    harm = area_harm(conn, level="lsoa21", force_code=force_code, period=period, scheme=scheme)
    rates = {a.code: a.harm_rate for a in harm.areas if a.harm_rate is not None}
    population = residents_by_group(conn, "lsoa21", force_code)
    column = parent_column(level)
    parents: dict[str, str] = dict(
        conn.execute(
            # column comes from PARENT_COLUMN, a fixed list
            text(f"SELECT code, {column} FROM areas WHERE level = 'lsoa21' AND force_code = :force"),
            {"force": force_code},
        ).all()
    )
    members: dict[str, list[str]] = defaultdict(list)
    for lsoa, parent in parents.items():
        if lsoa in rates and lsoa in population:
            members[parent].append(lsoa)
    names = area_names(conn, level, force_code)
    rng = np.random.default_rng(seed)
    result = ExposureResult(
        level=level,
        force_code=force_code,
        period=period,
        scheme=scheme.name,
        scheme_version=scheme.version,
        caveats=[*EXPOSURE_CAVEATS, scheme.caveat],
        method={
            "exposure": "sum over LSOA 2021 of harm rate x group residents / group residents",
            "harm_rate": "harm per 1,000 usual residents of each LSOA 2021 over the period",
            "ratio": "exposure of Black residents / exposure of White residents",
            "ratio_interval": f"95% percentile bootstrap over LSOAs within the area ({draws} draws, "
            f"seed {seed})",
            "population_source": POPULATION_SOURCE,
        },
    )
    for code in sorted(names):
        lsoas = sorted(members.get(code, []))
        rate = np.array([rates[a] for a in lsoas], dtype=float)
        pops = {g: np.array([population[a][g] for a in lsoas], dtype=float) for g in BROAD_GROUPS}
        row: dict[str, Any] = {"code": code, "name": names[code], "lsoas": len(lsoas), "exposure": {}}
        for group in BROAD_GROUPS:
            total = pops[group].sum()
            row["exposure"][group] = float(rate @ pops[group] / total) if total > 0 else None
        row.update(_ratio(rate, pops["Black"], pops["White"], rng, draws))
        result.areas.append(row)
    return result


def _ratio(
    rate: np.ndarray, black: np.ndarray, white: np.ndarray, rng: np.random.Generator, draws: int
) -> dict[str, Any]:
    if black.sum() == 0 or white.sum() == 0:
        return {"ratio": None, "ratio_interval": None, "ratio_reason": "no Black or no White residents here"}
    e_black, e_white = rate @ black / black.sum(), rate @ white / white.sum()
    if e_white == 0:
        return {"ratio": None, "ratio_interval": None, "ratio_reason": "no harm where White residents live"}
    picks = rng.integers(0, len(rate), size=(draws, len(rate)))
    with np.errstate(invalid="ignore", divide="ignore"):
        b = (rate[picks] * black[picks]).sum(1) / black[picks].sum(1)
        w = (rate[picks] * white[picks]).sum(1) / white[picks].sum(1)
        ratios = b / w
    ratios = ratios[np.isfinite(ratios)]
    interval = [float(np.quantile(ratios, 0.025)), float(np.quantile(ratios, 0.975))] if len(ratios) else None
    return {
        "ratio": float(e_black / e_white),
        "ratio_interval": interval,
        "significant": bool(interval and (interval[0] > 1 or interval[1] < 1)),
        "ratio_reason": None,
        "interval_note": (
            f"only {len(rate)} LSOAs: the bootstrap interval is rough" if len(rate) < FEW_AREAS else None
        ),
    }


def victimisation(
    conn: Connection,
    *,
    level: str,
    force_code: str,
    period: Period,
    disclosure: Disclosure | None = None,
) -> dict[str, Any]:
    """Victims per 1,000 residents by group from force records with victim ethnicity, against White."""
    column = parent_column(level)
    if level not in LEVELS:
        raise InvalidParameterError("level", f"{level!r} is not a level", allowed=list(LEVELS))
    disclosure = disclosure or Disclosure()
    rows = conn.execute(
        text(
            # column comes from PARENT_COLUMN, a fixed list
            f"SELECT {column} AS code, coalesce(victim_group, 'Not stated') AS grp, count(*) FROM offences "
            "WHERE force_code = :force AND month >= :start AND month < :end GROUP BY 1, 2"
        ),
        {"force": force_code, "start": period.start, "end": period.end_exclusive},
    ).all()
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for code, group, n in rows:
        counts[code][group] = int(n)
    population = residents_by_group(conn, level, force_code)
    names = area_names(conn, level, force_code)
    out = []
    for code in sorted(set(names) | set(counts)):
        pop = population.get(code, dict.fromkeys(BROAD_GROUPS, 0))
        out.extend(group_rate_rows(code, names.get(code), counts.get(code, {}), pop, disclosure, "victims"))
    recorded = sum(sum(c.values()) for c in counts.values())
    unstated = sum(c.get("Not stated", 0) for c in counts.values())
    return {
        "level": level,
        "force_code": force_code,
        "period": period.label,
        "rates": out,
        "offences": recorded,
        "victim_ethnicity_not_stated": unstated,
        "caveats": [
            "Victim ethnicity is often not recorded; offences without it are left out of every group's "
            f"rate ({unstated:,} of {recorded:,} here).",
            LOCATION_CAVEAT,
        ],
        "method": {
            "rate": "1000 x victims / Census 2021 residents of the group",
            "disclosure": disclosure.describe(),
            "population_source": POPULATION_SOURCE,
        },
    }
