"""Community trauma score for LSOAs and wards, built by the IMD 2019 method.

Domains (each a value per area, higher = more trauma):

* ``harm``: harm per 1,000 residents over the period (ONS CSS weights; where crimes happened);
* ``calls``: calls for service per 1,000 residents, **without** persistent callers;
* ``police_powers``: stop-and-search per 1,000 residents and s60 CJPOA searches per 1,000, each ranked
  and exponentially transformed, then averaged;
* ``deprivation``: IMD 2019 **without its Crime domain** (so crime is not counted twice): the other six
  domains' published ranks, transformed and combined with the IMD weights renormalised to sum to 1.
  IMD is published for LSOA 2011: an LSOA 2021 takes the mean over the LSOA 2011s it came from; a ward
  takes its LSOA 2021s' mean weighted by residents.

Method (IMD 2019 technical report; METHODS.md): rank each domain over the force's areas, scale the rank to
R in (0, 1] with 1 the highest, transform X = -23 ln(1 - R (1 - e^(-100/23))), so a high value in one domain
cannot be cancelled by a low one in another; score = sum_d w_d X_d with the configured weights; rank and
decile the score (1 = highest). Each domain's contribution is w_d X_d.

Default weights (configurable, ``HARMMAP_TRAUMA_WEIGHTS``): harm 0.35, calls 0.20, police powers 0.20,
deprivation 0.25. Harm carries the most because the score exists to show where crime harm falls;
deprivation is the context the workshops asked to layer; calls and police powers are the two contact
measures, given equal weight. A domain with no data for the force is left out and the remaining weights are
renormalised, and the output says so. Sensitivity: each weight in turn moves by -20% and +20% (the others
unchanged, then all renormalised); the Spearman correlation with the published ranking and the share of
areas changing decile are reported.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata, spearmanr
from sqlalchemy import Connection, text

from harm_index.demand import PersistentRule, call_demand
from harm_index.disclosure import Disclosure
from harm_index.periods import Period
from harm_index.population import POPULATION_SOURCE, area_names, residents_by_group
from harm_index.scores import LOCATION_CAVEAT, area_harm
from harm_index.weights import Scheme
from harmmap.errors import InvalidParameterError

DOMAINS = ("harm", "calls", "police_powers", "deprivation")
DEFAULT_WEIGHTS = {"harm": 0.35, "calls": 0.20, "police_powers": 0.20, "deprivation": 0.25}
LEVELS = ("lsoa21", "ward")
METHOD_VERSION = "1"
# IMD 2019 domain weights (MHCLG technical report) and the number of LSOAs its ranks run over.
IMD_WEIGHTS = {
    "Income": 0.225,
    "Employment": 0.225,
    "Education": 0.135,
    "Health": 0.135,
    "Crime": 0.093,
    "Housing_and_Access": 0.093,
    "Environment": 0.093,
}
IMD_LSOAS = 32_844
SENSITIVITY = 0.2
_K = 1 - math.exp(-100 / 23)

FloatArray = npt.NDArray[np.float64]


def exponential_transform(scaled_rank: npt.ArrayLike) -> FloatArray:
    """IMD transform of a rank scaled to (0, 1] (1 = highest): X = -23 ln(1 - R (1 - e^(-100/23)))."""
    r = np.asarray(scaled_rank, dtype=float)
    if np.any((r <= 0) | (r > 1)):
        raise ValueError("scaled ranks must lie in (0, 1]")
    return np.asarray(-23 * np.log(1 - r * _K), dtype=float)


def scaled_rank(values: npt.ArrayLike) -> FloatArray:
    """Rank scaled to (0, 1], 1 for the highest value (ties share their mean rank)."""
    v = np.asarray(values, dtype=float)
    return np.asarray(rankdata(v, method="average") / len(v), dtype=float)


def imd_scaled_rank(published_rank: npt.ArrayLike, lsoas: int = IMD_LSOAS) -> FloatArray:
    """A published IMD rank (1 = most deprived of ``lsoas``) as R in (0, 1], 1 for the most deprived."""
    rank = np.asarray(published_rank, dtype=float)
    return np.asarray((lsoas + 1 - rank) / lsoas, dtype=float)


def combine(transformed: Mapping[str, FloatArray], weights: Mapping[str, float]) -> FloatArray:
    """Weighted sum of transformed domains, the weights renormalised over the domains given."""
    total = sum(weights[d] for d in transformed)
    return np.asarray(sum((weights[d] / total) * x for d, x in transformed.items()), dtype=float)


def imd_from_domain_ranks(
    ranks: Mapping[str, npt.ArrayLike], weights: Mapping[str, float] = IMD_WEIGHTS, lsoas: int = IMD_LSOAS
) -> FloatArray:
    """The IMD combination of published domain ranks (higher = more deprived); used without Crime too."""
    return combine({d: exponential_transform(imd_scaled_rank(ranks[d], lsoas)) for d in ranks}, weights)


def rank_and_decile(score: FloatArray) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Rank (1 = highest score) and decile (1 = the highest-scoring tenth)."""
    order = rankdata(-score, method="min").astype(np.int64)
    decile = np.minimum(10, np.ceil(10 * order / len(score))).astype(np.int64)
    return order, decile


@dataclass(frozen=True)
class TraumaConfig:
    """The domain weights, versioned by their content so every output names exactly what made it."""

    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(DOMAINS)
        if unknown:
            raise InvalidParameterError(
                "weights", f"unknown trauma domains {sorted(unknown)}", allowed=list(DOMAINS)
            )
        if any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
            raise InvalidParameterError("weights", "trauma weights must be >= 0 and not all zero")

    @property
    def version(self) -> str:
        """``trauma-v<method>-<hash of the weights>``."""
        digest = hashlib.sha256(json.dumps(dict(sorted(self.weights.items()))).encode()).hexdigest()
        return f"trauma-v{METHOD_VERSION}-{digest[:8]}"


@dataclass
class TraumaResult:
    """Scores, ranks, deciles and contributions per area, with sensitivity and provenance."""

    level: str
    force_code: str
    period: Period
    config_version: str
    weights: dict[str, float]
    scheme: str
    scheme_version: str
    synthetic: bool
    areas: list[dict[str, Any]] = field(default_factory=list)
    sensitivity: dict[str, Any] = field(default_factory=dict)
    domains_left_out: dict[str, str] = field(default_factory=dict)
    caveats: list[str] = field(default_factory=list)
    method: dict[str, Any] = field(default_factory=dict)


def trauma_scores(
    conn: Connection,
    *,
    level: str,
    force_code: str,
    period: Period,
    scheme: Scheme,
    config: TraumaConfig | None = None,
    rule: PersistentRule | None = None,
) -> TraumaResult:
    """The community trauma score of every LSOA 2021 or ward in the force."""
    if level not in LEVELS:
        raise InvalidParameterError("level", f"{level!r} is not a level for trauma", allowed=list(LEVELS))
    config = config or TraumaConfig()
    names = area_names(conn, level, force_code)
    residents = {code: sum(g.values()) for code, g in residents_by_group(conn, level, force_code).items()}
    harm = area_harm(conn, level=level, force_code=force_code, period=period, scheme=scheme)
    # Internal inputs: disclosure control applies to what is published, not to the score's own inputs.
    demand = call_demand(
        conn,
        level=level,
        force_code=force_code,
        period=period,
        rule=rule,
        disclosure=Disclosure(active=False),
    )
    values: dict[str, dict[str, float]] = {
        "harm": {a.code: a.harm_rate for a in harm.areas if a.harm_rate is not None},
        "calls": {
            a["code"]: g["rate_without_persistent"]
            for a in demand.areas
            for g in a["groups"]
            if g["group"] == "all" and g["rate_without_persistent"] is not None
        }
        if demand.calls
        else {},
        "police_powers": _police_powers(conn, level, force_code, period, residents),
        "deprivation": _deprivation(conn, level, force_code),
    }
    left_out = {
        d: "no data for this force and period" for d in DOMAINS if not values[d] and config.weights.get(d, 0)
    }
    used = [d for d in DOMAINS if d not in left_out and config.weights.get(d, 0) > 0]
    scored = sorted(c for c in names if all(c in values[d] for d in used))
    unscored = sorted(set(names) - set(scored))
    result = TraumaResult(
        level=level,
        force_code=force_code,
        period=period,
        config_version=config.version,
        weights={d: config.weights[d] / sum(config.weights[u] for u in used) for d in used},
        scheme=scheme.name,
        scheme_version=scheme.version,
        synthetic=demand.synthetic and "calls" in used,
        domains_left_out=left_out,
        caveats=[
            "A composite of where harm, calls, police powers and deprivation concentrate; it describes "
            "places, never the people or any group living there.",
            LOCATION_CAVEAT,
            "Deprivation is IMD 2019 without its Crime domain, so crime is not counted twice.",
            *(
                ["SYNTHETIC calls for service feed the calls domain: scores are illustrative."]
                if demand.synthetic and "calls" in used
                else []
            ),
            *(f"{d} left out: {why}; the other weights are renormalised." for d, why in left_out.items()),
        ],
        method={
            "transform": "rank within the force, R in (0, 1], X = -23 ln(1 - R(1 - e^(-100/23)))",
            "combination": "sum of weight x X over the domains; rank and decile (1 = highest)",
            "police_powers": "mean of transformed ranks of searches per 1,000 and s60 searches per 1,000",
            "deprivation": "IMD 2019 without Crime: six domains' published ranks, IMD weights renormalised",
            "calls": f"calls per 1,000 without persistent callers ({demand.rule})",
            "population_source": POPULATION_SOURCE,
            "sensitivity": f"each weight x (1 -/+ {SENSITIVITY}); Spearman and share changing decile",
        },
    )
    if len(scored) < 2 or not used:
        result.areas = [
            {"code": c, "name": names[c], "score": None, "reason": "too few areas with every domain"}
            for c in sorted(names)
        ]
        return result
    transformed = {d: exponential_transform(scaled_rank([values[d][c] for c in scored])) for d in used}
    score = combine(transformed, result.weights)
    rank, decile = rank_and_decile(score)
    for i, code in enumerate(scored):
        result.areas.append(
            {
                "code": code,
                "name": names[code],
                "score": float(score[i]),
                "rank": int(rank[i]),
                "decile": int(decile[i]),
                "domains": {
                    d: {
                        "value": float(values[d][code]),
                        "transformed": float(transformed[d][i]),
                        "contribution": float(result.weights[d] * transformed[d][i]),
                    }
                    for d in used
                },
            }
        )
    for code in unscored:
        missing = [d for d in used if code not in values[d]]
        result.areas.append(
            {"code": code, "name": names[code], "score": None, "reason": f"no value for {', '.join(missing)}"}
        )
    result.sensitivity = sensitivity(transformed, result.weights)
    return result


def sensitivity(transformed: Mapping[str, FloatArray], weights: Mapping[str, float]) -> dict[str, Any]:
    """How the ranking moves when each weight in turn moves by -/+20%."""
    base = combine(transformed, weights)
    _, base_decile = rank_and_decile(base)
    runs: list[dict[str, Any]] = []
    spearmans: list[float] = []
    changes: list[float] = []
    for domain in transformed:
        for factor in (1 - SENSITIVITY, 1 + SENSITIVITY):
            moved = {d: w * (factor if d == domain else 1) for d, w in weights.items()}
            score = combine(transformed, moved)
            _, decile = rank_and_decile(score)
            rho = float(spearmanr(base, score).statistic) if len(base) > 2 else 1.0
            spearmans.append(rho)
            changes.append(float(np.mean(decile != base_decile)))
            runs.append(
                {
                    "domain": domain,
                    "factor": factor,
                    "spearman": rho,
                    "share_changing_decile": changes[-1],
                }
            )
    return {
        "runs": runs,
        "min_spearman": min(spearmans),
        "max_share_changing_decile": max(changes),
    }


def _police_powers(
    conn: Connection, level: str, force_code: str, period: Period, residents: Mapping[str, int]
) -> dict[str, float]:
    column = {"lsoa21": "lsoa21_code", "ward": "ward_code"}[level]
    rows = conn.execute(
        text(
            # column comes from a fixed two-entry map
            f"SELECT {column}, count(*), count(*) FILTER (WHERE legislation_group = 's60 CJPOA') "
            "FROM stop_searches WHERE force_code = :force AND month >= :start AND month < :end GROUP BY 1"
        ),
        {"force": force_code, "start": period.start, "end": period.end_exclusive},
    ).all()
    if not rows:
        return {}
    counts = {code: (int(n), int(s60)) for code, n, s60 in rows}
    codes = sorted(c for c, pop in residents.items() if pop > 0)
    searches = np.array([1000 * counts.get(c, (0, 0))[0] / residents[c] for c in codes])
    s60 = np.array([1000 * counts.get(c, (0, 0))[1] / residents[c] for c in codes])
    combined = (exponential_transform(scaled_rank(searches)) + exponential_transform(scaled_rank(s60))) / 2
    return {c: float(v) for c, v in zip(codes, combined, strict=True)}


def _deprivation(conn: Connection, level: str, force_code: str) -> dict[str, float]:
    domains = [d for d in IMD_WEIGHTS if d != "Crime"]
    rows = conn.execute(
        text(
            """
            SELECT a.code AS lsoa21, a.ward_code, i.lsoa11_code, i.measure, i.rank
            FROM areas a
            JOIN lookup_lsoa11_lsoa21 l ON l.lsoa21_code = a.code
            JOIN imd2019_lsoa11 i ON i.lsoa11_code = l.lsoa11_code
                                 AND i.measure = ANY(CAST(:domains AS text[]))
            WHERE a.level = 'lsoa21' AND a.force_code = :force
            """
        ),
        {"domains": domains, "force": force_code},
    ).all()
    if not rows:
        return {}
    ranks: dict[str, dict[str, int]] = defaultdict(dict)
    lsoa21_of: dict[str, set[str]] = defaultdict(set)
    ward_of: dict[str, str] = {}
    for lsoa21, ward, lsoa11, measure, rank in rows:
        ranks[lsoa11][measure] = rank
        lsoa21_of[lsoa21].add(lsoa11)
        ward_of[lsoa21] = ward
    complete = sorted(c for c, r in ranks.items() if len(r) == len(domains))
    score11 = dict(
        zip(
            complete,
            imd_from_domain_ranks({d: [ranks[c][d] for c in complete] for d in domains}).tolist(),
            strict=True,
        )
    )
    by21 = {
        code: float(np.mean([score11[c] for c in sources if c in score11]))
        for code, sources in lsoa21_of.items()
        if any(c in score11 for c in sources)
    }
    if level == "lsoa21":
        return by21
    weighted: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    lsoa_residents = residents_by_group(conn, "lsoa21", force_code)
    for code, value in by21.items():
        pop = sum(lsoa_residents.get(code, {}).values())
        weighted[ward_of[code]][0] += value * pop
        weighted[ward_of[code]][1] += pop
    return {ward: total / pop for ward, (total, pop) in weighted.items() if pop > 0}
