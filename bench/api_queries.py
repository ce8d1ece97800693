"""Benchmark: the ward collection with harm, and vector tiles, over HTTP; side by side with tipg.

Uses the scratch database bench/harm_queries.py builds (6M incidents over the 60 baseline months; run it
first), migrated to head. Starts harmmap and tipg (in its own virtual environment under bench/work, as
tipg pins its own stack) on the same database, and times, over loopback HTTP from this process:

* harmmap ``/collections/wards/items?force=E23000030&limit=300`` (261 wards, harm over the 60 baseline
  months with intervals) against tipg serving the same wards' plain table (code, name, geometry);
* harmmap tiles at z10-z14 over Hampshire.

Figures go to bench/results/api_queries.{json,md}.

    PYTHONPATH=. .venv/bin/python bench/api_queries.py
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
from sqlalchemy import create_engine, text

from bench.ingest_police_uk import WORK, machine  # type: ignore[import-not-found]
from harmmap import db
from harmmap.settings import REPO_ROOT, get_settings

RESULTS = REPO_ROOT / "bench" / "results"
TIPG_VERSION = "1.6.1"
HAMPSHIRE = "E23000030"
RUNS = 101


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=5).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def timed(client: httpx.Client, url: str, runs: int = RUNS) -> list[float]:
    client.get(url).raise_for_status()  # warm: caches, prepared statements
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(url)
        out.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
    return out


def summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "median": round(statistics.median(ordered), 2),
        "p99": round(ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)], 2),
        "runs": len(ordered),
    }


def tipg_python() -> Path:
    venv = WORK / "tipg-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"tipg=={TIPG_VERSION}", "uvicorn"], check=True
        )
    return python


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 1 << z
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def main() -> None:
    url = get_settings().db_url.set(database=f"{get_settings().db_url.database}_bench_harm")
    db.upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        incidents = conn.execute(text("SELECT count(*) FROM crimes")).scalar_one()
        conn.execute(text("DROP TABLE IF EXISTS bench_wards"))
        conn.execute(
            text(
                "CREATE TABLE bench_wards AS SELECT id, code, name, geom_4326 AS geom FROM areas "
                "WHERE level = 'ward' AND force_code = :f"
            ),
            {"f": HAMPSHIRE},
        )
        conn.execute(text("ALTER TABLE bench_wards ADD PRIMARY KEY (id)"))
        conn.execute(text("CREATE INDEX ON bench_wards USING gist (geom)"))
    engine.dispose()
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    ours, theirs = free_port(), free_port()
    env = {
        **os.environ,
        "HARMMAP_DATABASE_URL": url.render_as_string(hide_password=False),
        # One client asking as fast as it can is this benchmark, not abuse: the per-IP limit is lifted.
        "HARMMAP_RATE_LIMIT": "1000000/minute",
    }
    harmmap = subprocess.Popen(
        [str(REPO_ROOT / ".venv" / "bin" / "harmmap"), "serve", "--port", str(ours)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    tipg_env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "TIPG_DB_TABLES": '["public.bench_wards"]',
        "TIPG_MAX_FEATURES_PER_QUERY": "10000",
    }
    tipg = subprocess.Popen(
        [
            str(tipg_python()),
            "-m",
            "uvicorn",
            "tipg.main:app",
            "--port",
            str(theirs),
            "--log-level",
            "warning",
        ],
        env=tipg_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(f"http://127.0.0.1:{ours}/health")
        wait_for(f"http://127.0.0.1:{theirs}/collections")
        with httpx.Client(timeout=120) as client:
            ward_url = f"http://127.0.0.1:{ours}/collections/wards/items?force={HAMPSHIRE}&limit=300"
            wards = timed(client, ward_url)
            returned = client.get(ward_url).json()["numberReturned"]
            tipg_url = f"http://127.0.0.1:{theirs}/collections/public.bench_wards/items?limit=300"
            plain = timed(client, tipg_url)
            tipg_returned = client.get(tipg_url).json()["numberReturned"]
            tile_ms: dict[int, list[float]] = {}
            # Each tile's first request renders it (harm values already cached by the ward run);
            # the 25 after are what later map users get, from the server's tile cache.
            first_ms: list[float] = []
            for z in range(10, 15):
                for lon, lat in ((-1.40, 50.91), (-1.09, 50.80), (-1.31, 51.06), (-0.77, 51.28)):
                    x, y = tile_of(lon, lat, z)
                    tile_url = f"http://127.0.0.1:{ours}/tiles/wards/{z}/{x}/{y}.mvt"
                    start = time.perf_counter()
                    client.get(tile_url).raise_for_status()
                    first_ms.append((time.perf_counter() - start) * 1000)
                    tile_ms.setdefault(z, []).extend(timed(client, tile_url, runs=25))
    finally:
        for proc in (harmmap, tipg):
            proc.terminate()
            proc.wait(timeout=30)
    all_tiles = [v for values in tile_ms.values() for v in values]
    figures = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "incidents_loaded": incidents,
        "ward_collection_with_60_month_harm_ms": summary(wards),
        "wards_returned": returned,
        "tipg_plain_wards_ms": summary(plain),
        "tipg_returned": tipg_returned,
        "ratio_harmmap_to_tipg_median": round(statistics.median(wards) / statistics.median(plain), 2),
        "tiles_z10_z14_ms": summary(all_tiles),
        "tiles_first_request_ms": summary(first_ms),
        "tiles_by_zoom_median_ms": {z: round(statistics.median(v), 2) for z, v in tile_ms.items()},
        "tipg_version": TIPG_VERSION,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "api_queries.json").write_text(json.dumps(figures, indent=2) + "\n")
    w, t, ti = (
        figures["ward_collection_with_60_month_harm_ms"],
        figures["tipg_plain_wards_ms"],
        figures["tiles_z10_z14_ms"],
    )
    md = [
        "# Map API over HTTP",
        "",
        f"Measured {figures['when']} on {figures['machine']}, loopback HTTP, one client.",
        "",
        f"* Incidents loaded: {incidents:,} (real Hampshire police.uk rows replicated with jitter over "
        "the 60 "
        "baseline months).",
        f"* harmmap `/collections/wards/items?force={HAMPSHIRE}&limit=300` ({returned} wards with harm, "
        f"intervals and rates over 60 months): median **{w['median']} ms**, p99 {w['p99']} ms "
        "(target median <= 30 ms, p99 <= 150 ms).",
        f"* tipg {TIPG_VERSION}, the same wards as a plain table ({tipg_returned} features, no harm): median "
        f"{t['median']} ms, p99 {t['p99']} ms. Ratio harmmap / tipg (medians): "
        f"**{figures['ratio_harmmap_to_tipg_median']}**.",
        f"* Tiles z10-z14 (wards with harm, 4 places x 5 zooms x 25 requests): median **{ti['median']} ms**, "
        f"p99 {ti['p99']} ms (target median <= 10 ms); by zoom {figures['tiles_by_zoom_median_ms']}. "
        "These are repeat requests, answered from the server's tile cache (keyed by ETag).",
        f"* Each tile's first request, rendered by PostGIS (20 tiles): median "
        f"**{figures['tiles_first_request_ms']['median']} ms**, "
        f"p99 {figures['tiles_first_request_ms']['p99']} ms.",
        "",
    ]
    (RESULTS / "api_queries.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
