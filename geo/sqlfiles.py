"""Static SQL kept in ``geo/sql/*.sql`` and read once."""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def load_sql(name: str) -> str:
    """The text of ``geo/sql/<name>``."""
    return files("geo").joinpath("sql", name).read_text(encoding="utf-8")
