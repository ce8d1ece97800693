"""Test fixtures: a real PostGIS database built by harmmap's own migrations.

The suite fails, never skips, when PostGIS is unavailable; and any skipped test fails the run, so a
green run always means every test ran against the real store.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import URL

from app.main import create_app
from geo.load import load_boundaries
from harmmap import db
from harmmap.errors import DatabaseUnavailableError
from harmmap.settings import REPO_ROOT, Settings, get_settings

MANIFEST = REPO_ROOT / "data" / "boundaries" / "manifest.toml"


def _test_url() -> URL:
    explicit = os.environ.get("HARMMAP_TEST_DATABASE_URL")
    if explicit:
        return get_settings(database_url=explicit).db_url
    base = get_settings().db_url
    return base.set(database=f"{base.database}_test")


def pytest_sessionstart(session: pytest.Session) -> None:
    url = _test_url()
    try:
        db.ping_server(url)
    except DatabaseUnavailableError as exc:
        pytest.exit(f"PostGIS is required for the tests and is unavailable: {exc.detail}", returncode=3)


_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped and exitstatus == 0:
        print(f"\n{len(_skipped)} test(s) skipped; a skipped test fails this suite: {_skipped}")
        session.exitstatus = 1


@pytest.fixture(scope="session")
def database_url() -> Iterator[URL]:
    """A fresh test database, migrated to head, with the shipped boundaries loaded."""
    url = _test_url()
    db.drop_database(url)
    db.ensure_database(url)
    db.upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        load_boundaries(conn, MANIFEST)
    engine.dispose()
    yield url


@pytest.fixture(scope="session")
def settings(database_url: URL) -> Settings:
    return Settings(database_url=database_url.render_as_string(hide_password=False), environment="test")


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    engine = db.create_db_engine(settings)
    yield engine
    engine.dispose()


@pytest.fixture
def conn(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that is rolled back after the test: nothing leaks."""
    with engine.connect() as connection:
        outer = connection.begin()
        try:
            yield connection
        finally:
            outer.rollback()


@pytest.fixture(scope="session")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def fresh_batches(engine: Engine) -> Iterator[None]:
    """Batches a test loads (and, by cascade, their rows, rejects and aggregate) are removed afterwards."""
    with engine.connect() as conn:
        before = conn.execute(text("SELECT coalesce(max(id), 0) FROM ingest_batches")).scalar_one()
    yield
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM ingest_batches WHERE id > :id"), {"id": before})


@pytest.fixture
def manifest_path() -> Path:
    return MANIFEST
