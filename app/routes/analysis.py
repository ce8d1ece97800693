"""Analysis endpoints: each returns JSON with intervals, caveats, suppression markers and method metadata.

The layers are computed in ``harm_index``; this module reads parameters, chooses the disclosure rule
for the caller, and serialises the result.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from app.deps import ConnectionDep, GrantDep, SettingsDep
from app.validators import ForceCodeQuery
from harm_index.demand import PersistentRule, call_demand
from harm_index.disparity import stop_search_disparity
from harm_index.exposure import harm_exposure
from harm_index.hotspots import hotspots
from harm_index.periods import period_or_baseline
from harm_index.summary import area_summary
from harm_index.trauma import TraumaConfig, trauma_scores
from harm_index.weights import load_scheme
from harmmap import __version__
from harmmap.access import Grant
from harmmap.errors import InvalidParameterError

router = APIRouter(tags=["analysis"])

PeriodQuery = Annotated[
    str | None, Query(max_length=40, description="e.g. 2019-04..2020-03, FY2019/20, covid")
]
SchemeQuery = Annotated[str, Query(max_length=60, pattern=r"^[A-Za-z0-9_.-]+$")]
Level = Annotated[str, Query(max_length=20, pattern=r"^[a-z0-9_]+$")]


def _required_force(force: str | None) -> str:
    if force is None:
        raise InvalidParameterError("force", "a force GSS code is required, e.g. E23000030")
    return force


def _rows(result: Any) -> int:
    """How many rows a result holds, for the audit log: its areas, months or rates."""
    for name in ("areas", "months", "rates"):
        rows = getattr(result, name, None)
        if isinstance(rows, list):
            return len(rows)
    return 0


def _json(result: Any, grant: Grant, **meta: Any) -> Response:
    def default(value: object) -> object:
        if isinstance(value, dt.date):
            return value.isoformat()
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.asdict(value)
        raise TypeError(type(value).__name__)

    body = (
        dataclasses.asdict(result)
        if dataclasses.is_dataclass(result) and not isinstance(result, type)
        else dict(result)
    )
    body["metadata"] = {"service_version": __version__, **meta}
    grant.returned(_rows(result))
    return Response(json.dumps(body, default=default, separators=(",", ":")), media_type="application/json")


@router.get("/areas/{code}/summary", summary="An area's monthly harm by category, against the baseline")
def summary(
    code: str,
    conn: ConnectionDep,
    settings: SettingsDep,
    grant: GrantDep,
    level: Level = "ward",
    period: PeriodQuery = None,
    baseline: PeriodQuery = None,
    scheme: SchemeQuery = "ons-css",
) -> Response:
    """Month by month over ``period`` (default: the baseline) against ``baseline`` (default: the baseline)."""
    if len(code) > 12 or not code.isalnum():
        raise InvalidParameterError("code", f"{code[:40]!r} is not a GSS code")
    result = area_summary(
        conn,
        level=level,
        code=code.upper(),
        period=period_or_baseline(settings, period),
        baseline=period_or_baseline(settings, baseline, "baseline"),
        scheme=load_scheme(conn, scheme),
        disclosure=grant.disclosure(settings.disclosure_threshold),
        force_code=grant.force_code,
    )
    return _json(
        result,
        grant,
        population_source=None,
        disclosure=grant.disclosure(settings.disclosure_threshold).describe(),
    )


@router.get("/disproportionality", summary="Stop-and-search rates and ratios by ethnic group")
def disproportionality(
    conn: ConnectionDep,
    settings: SettingsDep,
    grant: GrantDep,
    force: ForceCodeQuery = None,
    level: Level = "force",
    period: PeriodQuery = None,
    ethnicity: Annotated[str, Query(pattern="^(self|officer)$")] = "self",
    legislation: Annotated[list[str] | None, Query(max_length=40)] = None,
) -> Response:
    """Searches per 1,000 residents by group and the ratio against White (Katz 95% CI)."""
    code = _required_force(force)
    disclosure = grant.disclosure(settings.disclosure_threshold)
    result = stop_search_disparity(
        conn,
        level=level,
        force_code=code,
        period=period_or_baseline(settings, period),
        basis=ethnicity,
        legislation=legislation,
        disclosure=disclosure,
    )
    return _json(result, grant, disclosure=disclosure.describe())


@router.get("/exposure", summary="Area-level harm exposure by ethnic group")
def exposure(
    conn: ConnectionDep,
    settings: SettingsDep,
    grant: GrantDep,
    force: ForceCodeQuery = None,
    level: Level = "force",
    period: PeriodQuery = None,
    scheme: SchemeQuery = "ons-css",
) -> Response:
    """Resident-weighted mean LSOA harm rate for each group, and the Black/White exposure ratio."""
    result = harm_exposure(
        conn,
        level=level,
        force_code=_required_force(force),
        period=period_or_baseline(settings, period),
        scheme=load_scheme(conn, scheme),
    )
    return _json(result, grant)


@router.get("/calls", summary="Calls-for-service demand, with and without persistent callers")
def calls(
    conn: ConnectionDep,
    settings: SettingsDep,
    grant: GrantDep,
    force: ForceCodeQuery = None,
    level: Level = "ward",
    period: PeriodQuery = None,
) -> Response:
    """Calls per 1,000 residents by closing-code group; synthetic data is marked."""
    code = _required_force(force)
    disclosure = grant.disclosure(settings.disclosure_threshold)
    rule = PersistentRule(settings.persistent_min_calls, settings.persistent_window_days)
    result = call_demand(
        conn,
        level=level,
        force_code=code,
        period=period_or_baseline(settings, period),
        rule=rule,
        disclosure=disclosure,
    )
    return _json(result, grant, disclosure=disclosure.describe())


@router.get("/trauma-scores", summary="Community trauma score (IMD method)")
def trauma(
    conn: ConnectionDep,
    settings: SettingsDep,
    grant: GrantDep,
    force: ForceCodeQuery = None,
    level: Level = "ward",
    period: PeriodQuery = None,
    scheme: SchemeQuery = "ons-css",
) -> Response:
    """Score, rank, decile and each domain's contribution, with sensitivity and the config version."""
    config = TraumaConfig(settings.trauma_weights)
    rule = PersistentRule(settings.persistent_min_calls, settings.persistent_window_days)
    result = trauma_scores(
        conn,
        level=level,
        force_code=_required_force(force),
        period=period_or_baseline(settings, period),
        scheme=load_scheme(conn, scheme),
        config=config,
        rule=rule,
    )
    return _json(result, grant, config_version=config.version)


@router.get("/hotspots", summary="Getis-Ord Gi* and local Moran's I hot spots of harm")
def hot_spots(
    conn: ConnectionDep,
    settings: SettingsDep,
    grant: GrantDep,
    force: ForceCodeQuery = None,
    level: Level = "ward",
    period: PeriodQuery = None,
    scheme: SchemeQuery = "ons-css",
    permutations: Annotated[int, Query(ge=99, le=9999)] = 999,
) -> Response:
    """FDR-controlled hot and cold spots and cluster classes; areas without neighbours are not tested."""
    result = hotspots(
        conn,
        level=level,
        force_code=_required_force(force),
        period=period_or_baseline(settings, period),
        scheme=load_scheme(conn, scheme),
        permutations=permutations,
    )
    return _json(result, grant)
