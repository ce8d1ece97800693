"""Query and path parameter types, validated at the edge so bad input becomes a 422 naming it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator

from geo.levels import AreaLevel
from harmmap.access import check_force_code


def _force_code(value: str) -> str:
    # InvalidParameterError is a ValueError, so pydantic reports it as this parameter's 422.
    code = check_force_code(value)
    assert code is not None
    return code


def _lad_code(value: str) -> str:
    value = value.strip().upper()
    if not AreaLevel.LOCAL_AUTHORITY.code_pattern.match(value):
        raise ValueError("must be a local authority GSS code: E06, E07, E08, E09 or W06 and six digits")
    return value


ForceCodePath = Annotated[
    str,
    AfterValidator(_force_code),
    Path(
        description="Police force area GSS code, e.g. E23000030 (Hampshire).",
        examples=["E23000030"],
    ),
]
ForceCodeQuery = Annotated[
    str | None,
    AfterValidator(lambda v: None if v is None else _force_code(v)),
    Query(description="Only areas in this police force area (GSS code).", examples=["E23000014"]),
]
LadCodeQuery = Annotated[
    str | None,
    AfterValidator(lambda v: None if v is None else _lad_code(v)),
    Query(description="Only areas in this local authority district (GSS code)."),
]
LevelQuery = Annotated[AreaLevel, Query(description="Which geography to return.")]
VintageQuery = Annotated[
    str | None,
    Query(
        max_length=16,
        pattern=r"^[A-Z0-9]+$",
        description="Boundary vintage, e.g. WD24 for May 2024 wards; default: every loaded vintage.",
    ),
]
