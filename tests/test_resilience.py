"""Resilience: a load run through a PostgreSQL restart, graceful shutdown, liveness and readiness."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2 as httpx

from bench.load_restart import run
from harm_index.weights import Scheme
from harmmap.settings import Settings


def test_load_through_a_postgresql_restart_recovers_by_itself(settings: Settings, layers: Scheme) -> None:
    """Requests during the outage get 503 (never 500); the service recovers without a restart."""
    result = run(seconds=30, restart_at=10, users=5, database_url=settings.database_url)
    print(result)
    assert result["requests"] > 50
    assert set(result["errors"]) <= {"LocustBadStatusCode(code=503)"}, result["errors"]
    assert result["recovery_s"] <= 20
    assert result["throughput_after_rps"] and result["throughput_after_rps"] > 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_sigterm_stops_cleanly_with_json_request_logs(
    settings: Settings, layers: Scheme, tmp_path: Path
) -> None:
    port = _free_port()
    # A file, not a pipe: nothing reads a pipe until the server has gone, and a full one would block it.
    log_file = (tmp_path / "serve.log").open("wb")
    env = {
        **os.environ,
        "HARMMAP_DATABASE_URL": settings.database_url,
        "HARMMAP_PORT": str(port),
        # Long enough for the request below even when numba compiles the hotspot code first (~20 s).
        "HARMMAP_GRACEFUL_SHUTDOWN_S": "120",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "harmmap.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log_file,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health/live", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        assert httpx.get(f"{base}/health/ready", timeout=10).status_code == 200
        # A request that takes seconds (9,999 permutations over every Hampshire LSOA) is in flight when
        # the signal arrives: it must be answered in full, not cut off.
        in_flight: dict[str, object] = {}

        def slow_request() -> None:
            try:
                response = httpx.get(
                    f"{base}/hotspots",
                    params={"force": "E23000030", "level": "lsoa21", "period": "2018", "permutations": 9999},
                    timeout=60,
                )
                in_flight["status"], in_flight["body"] = response.status_code, response.json()
            except httpx.HTTPError as exc:
                in_flight["error"] = repr(exc)

        requester = threading.Thread(target=slow_request)
        requester.start()
        time.sleep(1.0)
        server.send_signal(signal.SIGTERM)
        requester.join(timeout=60)
        # uvicorn shuts down (lifespan included), then re-raises the signal it caught: exit by SIGTERM.
        assert server.wait(timeout=60) in (0, -signal.SIGTERM)
        assert "error" not in in_flight, (in_flight, (tmp_path / "serve.log").read_text()[-3000:])
        assert in_flight["status"] == 200, in_flight
    finally:
        if server.poll() is None:
            server.kill()
        log_file.close()
    logs = (tmp_path / "serve.log").read_text()
    # Structured logs: one JSON object per line, each request with its id.
    access = [json.loads(line) for line in logs.splitlines() if '"harmmap.access"' in line]
    assert "Application shutdown complete" in logs
    assert len(access) >= 3
    # The request in flight was logged, and it finished after the signal.
    assert any(entry["path"] == "/hotspots" for entry in access)
    assert logs.index("Shutting down") < logs.index('"path": "/hotspots"')
    assert all(entry["request_id"] and entry["status"] == 200 for entry in access)
