"""Dependency aliases shared by the routes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from app.auth import Grant, Principal, get_grant, get_principal
from harmmap.errors import DatabaseUnavailableError
from harmmap.settings import Settings


def get_settings(request: Request) -> Settings:
    """The settings ``create_app`` was built with."""
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    """The engine the lifespan opened."""
    engine: Engine = request.app.state.engine
    return engine


def get_connection(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Connection]:
    """A pooled connection for one request; read-only routes never commit."""
    try:
        conn = engine.connect()
    except DBAPIError as exc:
        raise DatabaseUnavailableError("the database cannot be reached") from exc
    with conn:
        yield conn


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ConnectionDep = Annotated[Connection, Depends(get_connection)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
GrantDep = Annotated[Grant, Depends(get_grant)]
