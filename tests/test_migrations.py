"""``alembic upgrade head`` on an empty database, and ``alembic downgrade base``, through the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL

from harmmap import db
from harmmap.settings import REPO_ROOT

TABLES = {
    "areas",
    "lookup_lsoa11_lsoa21",
    "lookup_lsoa21_ward",
    "lookup_lad_force",
    "lookup_lsoa11_ward",
    "ingest_batches",
    "ingest_rejects",
    "crimes",
    "crime_batch_months",
    "stop_searches",
    "offences",
    "calls",
    "imd2019_lsoa11",
    "weight_schemes",
    "weights",
    "harm_levels",
    "harm_sources",
    "harm_keys",
    "harm_counts",
    "harm_totals",
    "harm_recent",
    "harm_recent_batches",
    "store_versions",
    "api_keys",
    "audit_log",
    "point_index",
    "labels",
    "census2021_ethnicity",
}


@pytest.fixture
def scratch_url(database_url: URL) -> Iterator[URL]:
    url = database_url.set(database=f"harmmap_scratch_{uuid.uuid4().hex[:8]}")
    db.ensure_database(url)
    try:
        yield url
    finally:
        db.drop_database(url)


def alembic(url: URL, *args: str) -> None:
    env = {**os.environ, "HARMMAP_DATABASE_URL": url.render_as_string(hide_password=False)}
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(REPO_ROOT / "alembic.ini"), *args],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


def state(url: URL) -> tuple[set[str], str | None, str | None]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names()) - {"alembic_version", "spatial_ref_sys"}
            return tables, db.current_revision(conn), db.postgis_version(conn)
    finally:
        engine.dispose()


def test_upgrade_head_then_downgrade_base_then_upgrade_again(scratch_url: URL) -> None:
    assert state(scratch_url) == (set(), None, None)

    alembic(scratch_url, "upgrade", "head")
    tables, revision, postgis = state(scratch_url)
    assert tables == TABLES
    assert revision == db.migration_head(scratch_url)
    assert postgis is not None

    alembic(scratch_url, "downgrade", "base")
    assert state(scratch_url) == (set(), None, None)

    alembic(scratch_url, "upgrade", "head")
    assert state(scratch_url)[0] == TABLES


def test_schema_refuses_bad_rows(scratch_url: URL) -> None:
    db.upgrade(scratch_url)
    engine = create_engine(scratch_url)
    square = "ST_Multi(ST_MakeEnvelope(400000, 100000, 401000, 101000, 27700))"
    try:
        with engine.connect() as conn:
            with pytest.raises(Exception, match="areas_code_check"):
                conn.execute(
                    text(
                        "INSERT INTO areas (level, code, vintage, name, geom, geom_4326, source) "
                        f"VALUES ('ward', 'not-a-code', 'WD24', 'x', {square}, "
                        f"ST_Transform({square}, 4326), 'test')"
                    )
                )
    finally:
        engine.dispose()
