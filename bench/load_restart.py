"""A bounded load run during which PostgreSQL is restarted: error rate, recovery time, throughput.

Starts ``harmmap serve`` on a free port against HARMMAP_DATABASE_URL (default: the demo database),
runs locust headless (bench/locustfile.py) for ``--seconds``, restarts the PostgreSQL cluster
(``pg_ctlcluster ... restart``) at ``--restart-at`` seconds, and reads locust's per-second history to
report:

* the error rate over the run, and which statuses the errors were (503 expected, never 500);
* the recovery time: from the restart command to the first second with no failures;
* throughput (requests/s) before the restart and after recovery.

Figures go to bench/results/load_restart.{json,md}.

    PYTHONPATH=. .venv/bin/python bench/load_restart.py --seconds 60 --restart-at 20
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx

from harmmap import db
from harmmap.access import Role
from harmmap.keys import create_key
from harmmap.settings import get_settings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cluster() -> tuple[str, str]:
    versions = sorted(os.listdir("/etc/postgresql"))
    return versions[-1], "main"


def _wait_ok(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {seconds} s")


def run(seconds: int, restart_at: int, users: int, database_url: str | None) -> dict[str, Any]:
    """Serve, load, restart PostgreSQL mid-run, and summarise locust's history."""
    settings = get_settings(**({"database_url": database_url} if database_url else {}))
    engine = db.create_db_engine(settings)
    with engine.begin() as conn:
        key = create_key(conn, Role.LEAD, None, "load run").token
    engine.dispose()
    port = _free_port()
    env = {
        **os.environ,
        "HARMMAP_DATABASE_URL": settings.database_url,
        "HARMMAP_PORT": str(port),
        "HARMMAP_RATE_LIMIT": "100000/second",
        "HARMMAP_LOG_LEVEL": "warning",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "harmmap.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    work = Path(tempfile.mkdtemp(prefix="harmmap-load-"))
    try:
        _wait_ok(f"{base}/health/ready", 60)
        locust = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("locust")),
                "-f",
                str(ROOT / "bench" / "locustfile.py"),
                "--headless",
                "-u",
                str(users),
                "-r",
                str(users),
                "-t",
                f"{seconds}s",
                "--host",
                base,
                "--csv",
                str(work / "run"),
                "--csv-full-history",
                "--only-summary",
                "--loglevel",
                "WARNING",
            ],
            env={**env, "HARMMAP_LOAD_KEY": key},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started = time.time()
        time.sleep(restart_at)
        version, cluster = _cluster()
        restart_sent = time.time()
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, "restart", "-m", "fast"],
            check=True,
            capture_output=True,
        )
        restarted = time.time()
        locust.wait(timeout=seconds + 60)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    return _summarise(work, started, restart_sent, restarted, seconds, users)


def _summarise(
    work: Path, started: float, restart_sent: float, restarted: float, seconds: int, users: int
) -> dict[str, Any]:
    history = [
        r for r in csv.DictReader((work / "run_stats_history.csv").open()) if r["Name"] == "Aggregated"
    ]
    failures = list(csv.DictReader((work / "run_failures.csv").open()))
    stats = [r for r in csv.DictReader((work / "run_stats.csv").open()) if r["Name"] == "Aggregated"][0]
    # Per second: cumulative counts -> deltas.
    seconds_rows = []
    previous_requests = previous_failures = 0
    for row in history:
        at = int(row["Timestamp"])
        requests = int(row["Total Request Count"])
        failed = int(row["Total Failure Count"])
        seconds_rows.append((at, requests - previous_requests, failed - previous_failures))
        previous_requests, previous_failures = requests, failed
    before = [n for at, n, f in seconds_rows if started + 3 <= at < restart_sent]
    failing = [at for at, _n, f in seconds_rows if f > 0 and at >= restart_sent - 1]
    recovered_at = (max(failing) + 1) if failing else restart_sent
    after = [n for at, n, f in seconds_rows if at >= recovered_at + 2]
    total = int(stats["Request Count"])
    failed_total = int(stats["Failure Count"])
    statuses: dict[str, int] = {}
    for row in failures:
        statuses[row["Error"][:120]] = statuses.get(row["Error"][:120], 0) + int(row["Occurrences"])
    return {
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "users": users,
        "seconds": seconds,
        "requests": total,
        "failures": failed_total,
        "error_rate": failed_total / total if total else None,
        "errors": statuses,
        "restart_took_s": round(restarted - restart_sent, 2),
        "recovery_s": round(max(0.0, recovered_at - restart_sent), 1),
        "throughput_before_rps": round(sum(before) / len(before), 1) if before else None,
        "throughput_after_rps": round(sum(after) / len(after), 1) if after else None,
    }


def write(result: dict[str, Any]) -> None:
    """Write the figures where the other benchmarks write theirs."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "load_restart.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Load run with a PostgreSQL restart",
        "",
        f"{result['users']} locust users for {result['seconds']} s against `harmmap serve` on loopback "
        f"(ward collection with harm, ward tiles, the calls layer; lead key); {result['machine']}; "
        f"measured {result['measured_at']}.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| requests | {result['requests']:,} |",
        f"| failed | {result['failures']:,} ({(result['error_rate'] or 0):.2%}) |",
        f"| PostgreSQL restart took | {result['restart_took_s']} s |",
        f"| recovery (restart to first clean second) | {result['recovery_s']} s |",
        f"| throughput before | {result['throughput_before_rps']} req/s |",
        f"| throughput after recovery | {result['throughput_after_rps']} req/s |",
        "",
        "Errors: " + ("; ".join(f"{k} x{v}" for k, v in result["errors"].items()) or "none"),
    ]
    (RESULTS / "load_restart.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--restart-at", type=int, default=20)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    result = run(args.seconds, args.restart_at, args.users, args.database_url)
    write(result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
