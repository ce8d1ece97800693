"""``harmmap generate calls``: realistic SYNTHETIC calls for service, in harmmap's calls schema.

No public record-level calls data exists, so the demo and tests use these. Every row says
``synthetic=true`` and the file name says SYNTHETIC; the loader keeps the flag on every stored row and on
the batch, and everything derived from them carries it. The distributions (documented in
docs/input-schemas.md):

* volume: about 40 calls per 1,000 residents a month (of the order forces report for 999 + 101 +
  online contact), with a gentle seasonal swing (summer high) and the COVID lockdown dips;
* where: each call lands in an LSOA chosen half by Census 2021 population and half by the force's recorded
  crime (population alone if no crime is loaded), at a random point inside it; 7% give only the LSOA;
* channel: 30% 999, 52% 101, 18% online; closing codes drawn from a fixed mix;
* callers: most call once or twice; 8% withhold their number; three persistent callers per force make
  hundreds of calls from their own LSOA;
* caller ethnicity: not recorded for 65%; otherwise drawn from the LSOA's Census mix.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv
import shapely
from sqlalchemy import Connection, text

from harmmap.errors import InvalidParameterError, NotFoundError
from ingest.calls import CLOSING_CODE_GROUPS

CALLS_PER_1000_PER_MONTH = 40.0
CHANNELS = (("999", 0.30), ("101", 0.52), ("online", 0.18))
CLOSING_MIX = {
    "CONCERN_FOR_SAFETY": 13,
    "ADMIN_ENQUIRY": 11,
    "ASB_NUISANCE": 9,
    "CRIME_VIOLENCE": 7,
    "SUSPICIOUS_CIRCUMSTANCES": 7,
    "CRIME_DOMESTIC": 6,
    "CRIME_THEFT": 6,
    "ROAD_TRAFFIC_COLLISION": 5,
    "NO_POLICE_ACTION_REQUIRED": 5,
    "ASB_PERSONAL": 4,
    "MENTAL_HEALTH": 4,
    "CRIME_CRIMINAL_DAMAGE": 4,
    "ROAD_RELATED_OFFENCE": 3,
    "MISSING_PERSON": 3,
    "CRIME_BURGLARY": 3,
    "DUPLICATE_CALL": 3,
    "CRIME_OTHER": 2,
    "ASB_ENVIRONMENTAL": 2,
    "CRIME_DRUGS": 2,
    "HOAX_OR_NUISANCE_CALL": 1,
}
PERSISTENT_CODES = (
    "CONCERN_FOR_SAFETY",
    "ASB_NUISANCE",
    "MENTAL_HEALTH",
    "HOAX_OR_NUISANCE_CALL",
    "ADMIN_ENQUIRY",
)
PERSISTENT_CALLERS = 3
# Hour-of-day profile of demand (UK local), lowest before dawn, highest in the evening.
HOUR_WEIGHTS = np.array(
    [
        3,
        2,
        2,
        1.5,
        1.2,
        1.2,
        1.8,
        2.8,
        3.8,
        4.3,
        4.6,
        4.8,
        5.0,
        5.0,
        5.2,
        5.6,
        6.0,
        6.2,
        6.3,
        6.1,
        5.6,
        5.0,
        4.3,
        3.6,
    ]
)
COVID_DIPS = {"2020-04": 0.82, "2020-05": 0.88, "2021-01": 0.9, "2021-02": 0.92}
ETHNICITY_NOT_RECORDED = 0.65
CENSUS_GROUP_NAMES = {
    "Asian": "Asian, Asian British or Asian Welsh",
    "Black": "Black, Black British, Black Welsh, Caribbean or African",
    "Mixed": "Mixed or Multiple ethnic groups",
    "White": "White",
    "Other": "Other ethnic group",
}
HEADER = (
    "call_id",
    "received_at",
    "channel",
    "opening_code",
    "closing_code",
    "latitude",
    "longitude",
    "lsoa_code",
    "caller_ref",
    "caller_ethnicity",
    "synthetic",
)


@dataclass(frozen=True)
class Lsoa:
    """What the generator needs to know about the force's LSOAs."""

    codes: npt.NDArray[np.object_]
    polygons: npt.NDArray[np.object_]
    weight: npt.NDArray[np.float64]
    residents: float
    groups: npt.NDArray[np.float64]  # shares of the five broad groups per LSOA


def month_range(start: str, end: str) -> list[dt.date]:
    """Months from ``start`` to ``end`` inclusive, both YYYY-MM."""
    try:
        first = dt.date.fromisoformat(f"{start}-01")
        last = dt.date.fromisoformat(f"{end}-01")
    except ValueError:
        raise InvalidParameterError("months", f"{start}..{end}: months must be YYYY-MM") from None
    if last < first:
        raise InvalidParameterError("months", f"{start}..{end} ends before it starts")
    months = []
    while first <= last:
        months.append(first)
        first = (first + dt.timedelta(days=32)).replace(day=1)
    return months


def generate_calls(conn: Connection, force_code: str, months: list[dt.date], out: Path, seed: int) -> int:
    """Write synthetic calls for ``force_code`` over ``months`` to ``out``; returns the row count."""
    rng = np.random.default_rng(seed)
    lsoa = _lsoas(conn, force_code)
    codes = np.array(list(CLOSING_MIX), dtype=object)
    code_p = np.array(list(CLOSING_MIX.values()), dtype=float)
    code_p /= code_p.sum()
    pool = max(int(lsoa.residents * 0.5), 1000)
    persistent_home = rng.choice(len(lsoa.codes), PERSISTENT_CALLERS, p=lsoa.weight)
    persistent_total = rng.integers(150, 400, PERSISTENT_CALLERS)
    written = 0
    with out.open("wb") as fh:
        for month in months:
            n = int(rng.poisson(_monthly_volume(lsoa.residents, month)))
            where = rng.choice(len(lsoa.codes), n, p=lsoa.weight)
            # Uniform over a pool far larger than a month's calls: most callers call once, a few twice.
            caller = rng.integers(0, pool, n)
            closing = codes[rng.choice(len(codes), n, p=code_p)]
            # Persistent callers: their share of the window's calls, from home, with their usual codes.
            extra = [rng.binomial(total, 1 / len(months)) for total in persistent_total]
            p_where = np.repeat(persistent_home, extra)
            p_caller = np.repeat(-1 - np.arange(PERSISTENT_CALLERS), extra)
            p_codes = np.array(PERSISTENT_CODES, dtype=object)[
                rng.integers(0, len(PERSISTENT_CODES), sum(extra))
            ]
            where = np.concatenate((where, p_where))
            caller = np.concatenate((caller, p_caller))
            closing = np.concatenate((closing, p_codes))
            table = _month_table(rng, force_code, month, lsoa, where, caller, closing, start_id=written)
            pacsv.write_csv(table, fh, pacsv.WriteOptions(include_header=written == 0))
            written += table.num_rows
    return written


def _monthly_volume(residents: float, month: dt.date) -> float:
    seasonal = 1 + 0.08 * np.sin((month.month - 4) / 12 * 2 * np.pi)
    return float(
        residents / 1000 * CALLS_PER_1000_PER_MONTH * seasonal * COVID_DIPS.get(f"{month:%Y-%m}", 1.0)
    )


def _month_table(
    rng: np.random.Generator,
    force_code: str,
    month: dt.date,
    lsoa: Lsoa,
    where: np.ndarray,
    caller: np.ndarray,
    closing: np.ndarray,
    start_id: int,
) -> pa.Table:
    m = len(where)
    days = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - month
    hours = rng.choice(24, m, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    local = (
        np.datetime64(month)
        + rng.integers(0, days.days, m).astype("timedelta64[D]")
        + hours.astype("timedelta64[h]")
        + rng.integers(0, 3600, m).astype("timedelta64[s]")
    )
    # Generated as UK local time and written with its UTC offset, as a force's system would export it.
    stamps = pa.array(local.astype("datetime64[s]"), pa.timestamp("s"))
    received = pa.compute.assume_timezone(stamps, "Europe/London", ambiguous="earliest", nonexistent="latest")
    received_text = pa.compute.strftime(received, format="%Y-%m-%dT%H:%M:%S%z")
    opening = np.where(
        rng.random(m) < 0.7,
        closing,
        np.array(list(CLOSING_CODE_GROUPS) + ["UNKNOWN"], dtype=object)[
            rng.integers(0, len(CLOSING_CODE_GROUPS) + 1, m)
        ],
    )
    channel = np.array([c for c, _ in CHANNELS], dtype=object)[rng.choice(3, m, p=[p for _, p in CHANNELS])]
    withheld = (rng.random(m) < 0.08) & (caller >= 0)
    refs = np.array([_caller_ref(force_code, int(c)) for c in caller], dtype=object)
    refs[withheld] = ""
    lon, lat = _points_in(rng, lsoa.polygons[where])
    code_only = rng.random(m) < 0.07
    group_index = np.array([rng.choice(5, p=lsoa.groups[w]) for w in where])
    names = np.array(list(CENSUS_GROUP_NAMES.values()), dtype=object)[group_index]
    names[rng.random(m) < ETHNICITY_NOT_RECORDED] = ""
    ids = np.array([f"SYN-{force_code}-{month:%Y%m}-{start_id + k + 1:08d}" for k in range(m)], dtype=object)
    return pa.table(
        {
            "call_id": pa.array(ids, pa.string()),
            "received_at": received_text,
            "channel": pa.array(channel, pa.string()),
            "opening_code": pa.array(opening, pa.string()),
            "closing_code": pa.array(closing, pa.string()),
            "latitude": pa.array(np.round(lat, 6), pa.float64(), mask=code_only),
            "longitude": pa.array(np.round(lon, 6), pa.float64(), mask=code_only),
            "lsoa_code": pa.array(lsoa.codes[where], pa.string()),
            "caller_ref": pa.array(refs, pa.string()),
            "caller_ethnicity": pa.array(names, pa.string()),
            "synthetic": pa.array(np.full(m, "true", dtype=object), pa.string()),
        }
    )


def _caller_ref(force_code: str, caller: int) -> str:
    return hashlib.sha256(f"harmmap-synthetic:{force_code}:{caller}".encode()).hexdigest()


def _points_in(rng: np.random.Generator, polygons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A uniformly random point inside each polygon (rejection sampling in its bounding box)."""
    bounds = shapely.bounds(polygons)
    lon = np.empty(len(polygons))
    lat = np.empty(len(polygons))
    todo = np.arange(len(polygons))
    while len(todo):
        b = bounds[todo]
        # Rounded to the 6 decimals written to the file before testing, so no point drifts out.
        x = np.round(rng.uniform(b[:, 0], b[:, 2]), 6)
        y = np.round(rng.uniform(b[:, 1], b[:, 3]), 6)
        inside = shapely.contains_xy(polygons[todo], x, y)
        lon[todo[inside]], lat[todo[inside]] = x[inside], y[inside]
        todo = todo[~inside]
    return lon, lat


def _lsoas(conn: Connection, force_code: str) -> Lsoa:
    rows = conn.execute(
        text(
            """
            SELECT a.code, ST_AsBinary(a.geom_4326) AS wkb,
                   coalesce(p.residents, 0) AS residents, coalesce(c.crimes, 0) AS crimes,
                   coalesce(p.asian, 0) AS asian, coalesce(p.black, 0) AS black,
                   coalesce(p.mixed, 0) AS mixed, coalesce(p.white, 0) AS white, coalesce(p.other, 0) AS other
            FROM areas a
            LEFT JOIN (
                SELECT area_code,
                       sum(residents) AS residents,
                       sum(residents) FILTER (WHERE broad_group = 'Asian') AS asian,
                       sum(residents) FILTER (WHERE broad_group = 'Black') AS black,
                       sum(residents) FILTER (WHERE broad_group = 'Mixed') AS mixed,
                       sum(residents) FILTER (WHERE broad_group = 'White') AS white,
                       sum(residents) FILTER (WHERE broad_group = 'Other') AS other
                FROM census2021_ethnicity WHERE area_level = 'lsoa21' GROUP BY area_code
            ) p ON p.area_code = a.code
            LEFT JOIN (
                SELECT lsoa21_code, count(*) AS crimes FROM crimes WHERE force_code = :force
                GROUP BY lsoa21_code
            ) c ON c.lsoa21_code = a.code
            WHERE a.level = 'lsoa21' AND a.force_code = :force
            ORDER BY a.code
            """
        ),
        {"force": force_code},
    ).all()
    if not rows:
        raise NotFoundError(f"no LSOAs are loaded for force {force_code}", parameter="force")
    residents = np.array([r.residents for r in rows], dtype=float)
    crimes = np.array([r.crimes for r in rows], dtype=float)
    if residents.sum() == 0:
        residents[:] = 1500.0  # an LSOA holds about 1,500 residents when no Census is loaded
    weight = residents / residents.sum()
    if crimes.sum() > 0:
        weight = 0.5 * weight + 0.5 * crimes / crimes.sum()
    groups = np.array([[r.asian, r.black, r.mixed, r.white, r.other] for r in rows], dtype=float)
    groups[groups.sum(axis=1) == 0] = [0.1, 0.04, 0.03, 0.8, 0.03]
    groups /= groups.sum(axis=1, keepdims=True)
    return Lsoa(
        codes=np.array([r.code for r in rows], dtype=object),
        polygons=np.asarray(shapely.from_wkb([r.wkb for r in rows]), dtype=object),
        weight=weight,
        residents=float(residents.sum()),
        groups=groups,
    )
