"""Test fixtures: a real PostGIS database built by harmmap's own migrations.

The suite fails, never skips, when PostGIS is unavailable; and any skipped test fails the run, so a
green run always means every test ran against the real store.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import URL

from app.main import create_app
from geo.load import load_boundaries
from harm_index.weights import Scheme, shipped_ons_css_scheme, store_scheme
from harmmap import db
from harmmap.access import Role
from harmmap.errors import DatabaseUnavailableError
from harmmap.keys import create_key
from harmmap.settings import REPO_ROOT, Settings, get_settings
from ingest.batch import ingest_file
from ingest.calls import CallsForService
from ingest.generate_calls import generate_calls
from ingest.police_uk import PoliceUkStreet
from ingest.reference import CensusEthnicityLsoa, ImdRanks
from ingest.stop_search import PoliceUkStopSearch

WEST_MIDLANDS = "E23000014"
MANIFEST = REPO_ROOT / "data" / "boundaries" / "manifest.toml"
DATA = REPO_ROOT / "data"
HAMPSHIRE = "E23000030"


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
    # The limit is tested on its own app; the suite itself makes thousands of requests a minute.
    return Settings(
        database_url=database_url.render_as_string(hide_password=False),
        environment="test",
        rate_limit="1000000/minute",
    )


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


@pytest.fixture(scope="session")
def api_keys(engine: Engine) -> dict[str, str]:
    """Real API keys, hashed in the test store, by who holds them."""
    holders = {
        "public": (Role.PUBLIC, None),
        "analyst-hampshire": (Role.ANALYST, HAMPSHIRE),
        "analyst-west-midlands": (Role.ANALYST, WEST_MIDLANDS),
        "lead": (Role.LEAD, None),
        "admin": (Role.ADMIN, None),
    }
    with engine.begin() as conn:
        return {
            holder: create_key(conn, role, force, f"tests: {holder}").token
            for holder, (role, force) in holders.items()
        }


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


@pytest.fixture(scope="module")
def layers(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scheme]:
    """Real Hampshire street crime (Dec 2018), stop and search (Nov 2018 - Mar 2019), Census, IMD, and
    synthetic calls for Dec 2018."""
    with engine.connect() as conn:
        before = conn.execute(text("SELECT coalesce(max(id), 0) FROM ingest_batches")).scalar_one()
    refs = DATA / "reference_layers"
    ingest_file(
        engine, refs / "ts021_ethnic_group_broad_lsoa21_hampshire_westmidlands.csv", CensusEthnicityLsoa()
    )
    ingest_file(engine, refs / "imd2019_lsoa11_ranks_deciles_hampshire_westmidlands.csv", ImdRanks())
    ingest_file(
        engine, DATA / "police_uk" / "street" / "hampshire" / "2018-12-hampshire-street.csv", PoliceUkStreet()
    )
    for path in sorted((DATA / "police_uk" / "stop_and_search" / "hampshire").glob("*.csv")):
        ingest_file(engine, path, PoliceUkStopSearch())
    calls = tmp_path_factory.mktemp("calls") / "calls-SYNTHETIC-hampshire-2018-12.csv"
    with engine.connect() as conn:
        generate_calls(conn, HAMPSHIRE, [dt.date(2018, 12, 1)], calls, seed=5)
    ingest_file(engine, calls, CallsForService(), force_code=HAMPSHIRE, synthetic=True)
    scheme = shipped_ons_css_scheme(DATA)
    with engine.begin() as conn:
        store_scheme(conn, scheme)
    yield scheme
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM ingest_batches WHERE id > :id"), {"id": before})
        conn.execute(text("DELETE FROM weight_schemes"))


@contextmanager
def _live_server(settings: Settings) -> Iterator[str]:
    """The service on a free local port in a thread, for real HTTP clients (GDAL, a browser)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def serve() -> Callable[[Settings], AbstractContextManager[str]]:
    """``with serve(settings) as url``: the service over real HTTP for the block."""
    return _live_server
