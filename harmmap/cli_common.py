"""Helpers shared by the ``harmmap`` command groups: settings, errors, forces and periods."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from harmmap.errors import HarmmapError
from harmmap.settings import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from harm_index.periods import Period


def settings_or_exit() -> Settings:
    """Settings from the environment; bad settings end the command with a clear message."""
    try:
        return get_settings()
    except ValueError as exc:
        typer.secho(f"harmmap: bad settings: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None


def fail(exc: HarmmapError) -> typer.Exit:
    """Report a domain error on stderr; the caller raises the returned exit."""
    typer.secho(f"harmmap: {exc.detail}", fg="red", err=True)
    return typer.Exit(1)


@contextmanager
def command_engine(settings: Settings | None = None) -> Iterator[Engine]:
    """The store for one command: disposed when it ends, and a domain error ends it with its message."""
    from harmmap import db

    engine = db.create_db_engine(settings or settings_or_exit())
    try:
        yield engine
    except HarmmapError as exc:
        raise fail(exc) from None
    finally:
        engine.dispose()


def force_code(value: str) -> str:
    """A police force area GSS code, upper-cased; anything else ends the command."""
    from harmmap.access import check_force_code

    try:
        code = check_force_code(value, "--force")
    except HarmmapError as exc:
        typer.secho(f"harmmap: --force {value!r} {exc.detail}", fg="red", err=True)
        raise typer.Exit(2) from None
    assert code is not None
    return code


def resolve_period(settings: Settings, start: str | None, end: str | None, period: str | None) -> Period:
    """``--period`` if given, else ``--from``/``--to``, each defaulting to the configured baseline."""
    from harm_index.periods import Period, configured_periods, month, parse_period

    named = configured_periods(settings)
    if period:
        return parse_period(period, named)
    first = month(start, "--from") if start else named.baseline.start
    last = month(end, "--to") if end else named.baseline.end
    return Period(first, last, f"{first:%Y-%m} to {last:%Y-%m}")
