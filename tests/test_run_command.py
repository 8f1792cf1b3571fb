"""`manage.py run` on a fresh state directory: answers /healthz, processes a push, stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from lifecycle.providers.seventeentrack import webhook as st
from simulators.seventeentrack import SimulatorServer, pushes
from tests.helpers import delivered, wait_for

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _heartbeats(base: str) -> dict | None:
    health = _get(f"{base}/healthz") or {}
    ages = (health.get("worker_heartbeat_age_seconds"), health.get("beat_heartbeat_age_seconds"))
    return health if None not in ages else None


def test_run_serves_processes_and_stops_on_sigterm(tmp_path):
    port = free_port()
    with SimulatorServer("run-key") as sim:
        sim.add_parcel("RR123456789CN", 3011)
        env = {
            **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL")},
            "VAR_DIR": str(tmp_path / "var"),
            "SEVENTEENTRACK_API_KEY": "run-key",
            "SEVENTEENTRACK_API_URL": sim.url,
            "HEARTBEAT_INTERVAL_SECONDS": "1",
        }
        command = [sys.executable, "manage.py", "run", "--port", str(port)]
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        base = f"http://127.0.0.1:{port}"
        try:
            health = wait_for(lambda: _get(f"{base}/healthz"), timeout=60)
            assert {key: health[key] for key in ("status", "database", "broker", "inbox_pending")} == {
                "status": "ok",
                "database": "ok",
                "broker": "ok",
                "inbox_pending": 0,
            }
            assert health["inbox_failed"] == 0
            # The embedded worker and beat both write heartbeats (HEARTBEAT_INTERVAL_SECONDS below).
            beating = wait_for(lambda: _heartbeats(base), timeout=60, interval=0.5)
            assert beating["workers"] == {"alive": 1, "problem": None}
            body = pushes.encode(delivered("RR123456789CN"))
            response = requests.post(
                f"{base}/webhooks/17track", data=body, headers={"sign": st.sign(body, "run-key")}
            )
            assert response.status_code == 200
            shipment = wait_for(lambda: _stopped_shipment(env), timeout=60, interval=0.5)
            assert shipment["status"] == "delivered" and shipment["carrier"] == 3011
            assert sim.state.parcels["RR123456789CN"].tracking == "Stopped"
        finally:
            process.send_signal(signal.SIGTERM)
            output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 0, output
    assert (tmp_path / "var" / "lifecycle.sqlite3").exists()
    time.sleep(0.5)
    assert _get(f"{base}/healthz") is None  # nothing left listening


def _get(url: str) -> dict | None:
    try:
        return requests.get(url, timeout=2).json()
    except requests.RequestException:
        return None


def _stopped_shipment(env: dict[str, str]) -> dict | None:
    result = subprocess.run(
        [sys.executable, "manage.py", "shipments", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=True,
    )
    shipments = json.loads(result.stdout)["shipments"]
    return shipments[0] if shipments and shipments[0]["tracking"] == "stopped" else None
