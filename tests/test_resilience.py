"""Resilience: a load run through a PostgreSQL restart, graceful shutdown, liveness and readiness."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

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


def test_sigterm_stops_cleanly_with_json_request_logs(settings: Settings, layers: Scheme) -> None:
    port = _free_port()
    env = {**os.environ, "HARMMAP_DATABASE_URL": settings.database_url, "HARMMAP_PORT": str(port)}
    server = subprocess.Popen(
        [sys.executable, "-m", "harmmap.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
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
        server.send_signal(signal.SIGTERM)
        # uvicorn shuts down (lifespan included), then re-raises the signal it caught: exit by SIGTERM.
        assert server.wait(timeout=60) in (0, -signal.SIGTERM)
    finally:
        if server.poll() is None:
            server.kill()
    logs = (server.stderr.read() if server.stderr else b"").decode()
    # Structured logs: one JSON object per line, each request with its id.
    access = [json.loads(line) for line in logs.splitlines() if '"harmmap.access"' in line]
    assert "Application shutdown complete" in logs
    assert len(access) >= 2
    assert all(entry["request_id"] and entry["status"] == 200 for entry in access)
