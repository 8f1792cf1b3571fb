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


def _descendants(pid: int) -> set[int]:
    """Every process below `pid` now (children by parent pid, recursively; Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie holds no port and runs nothing; its parent reaps it


def _with_our_state(var_dir: Path) -> set[int]:
    """Processes whose environment names this test's VAR_DIR: any process `run` started, however
    it was started and whoever its parent is now."""
    marker = f"VAR_DIR={var_dir}\0".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "environ").read_bytes():
                found.add(int(entry.name))
        except OSError:
            continue
    return {pid for pid in found if _alive(pid)}


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds it
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_closing_the_terminal_sighup_stops_every_process_and_frees_the_port(tmp_path):
    """SIGHUP (the terminal closing) used to kill `run` but orphan gunicorn and celery on the port."""
    port = free_port()
    var_dir = tmp_path / "var"
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL")},
        "VAR_DIR": str(var_dir),
        "SEVENTEENTRACK_API_KEY": "sighup-key",
        "SEVENTEENTRACK_API_URL": "http://127.0.0.1:9",  # never called: nothing is registered
        "HEARTBEAT_INTERVAL_SECONDS": "1",
    }
    log_path = tmp_path / "run.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "manage.py", "run", "--port", str(port)], cwd=ROOT,
                                   env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _get(f"{base}/healthz"), timeout=120, interval=0.3)
        # Web (gunicorn and its worker) and the celery worker with its embedded beat are all up.
        wait_for(lambda: _heartbeats(base), timeout=120, interval=0.5)
        started = _descendants(process.pid)
        assert len(started) >= 3, log_path.read_text()
        process.send_signal(signal.SIGHUP)
        assert process.wait(timeout=120) == 0, log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    output = log_path.read_text()
    assert "lifecycle: SIGHUP received, stopping everything" in output
    wait_for(lambda: not any(_alive(pid) for pid in started), timeout=60, interval=0.2)
    assert _with_our_state(var_dir) == set(), output
    wait_for(lambda: _port_free(port), timeout=60, interval=0.2)
    assert _get(f"{base}/healthz") is None


def test_run_and_serve_refuse_a_taken_port_in_one_line_with_exit_2(tmp_path):
    """An expected failure, told like the others (README: one `error: …` line, exit 2)."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL")},
        "VAR_DIR": str(tmp_path / "var"),
    }
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for command in ("run", "serve"):
            result = subprocess.run([sys.executable, "manage.py", command, "--port", str(port)], cwd=ROOT,
                                    env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
            assert result.returncode == 2, result.stderr
            assert result.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
            assert f"--port {port + 1}" in result.stderr and result.stderr.count("\n") == 1
