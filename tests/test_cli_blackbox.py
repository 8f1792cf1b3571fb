"""Every `manage.py` command the README shows, run as a user runs it: a subprocess on the embedded
default (SQLite + the broker with no server), against a `manage.py run` that is up at the same time.

Providers are the project's 17TRACK simulator over real HTTP. Waits poll the CLI's own JSON with
generous ceilings, so a busy machine makes these slower, not red.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from simulators.seventeentrack import SimulatorServer
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parent.parent
KEY = "blackbox-17track-key"
# Variables of the developer's shell that would point a subprocess away from its own state.
_OURS = ("DATABASE_URL", "BROKER_URL", "LIMITER_URL", "VAR_DIR", "CARGOAI_API_KEY", "SEVENTEENTRACK_")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(var_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    return {**env, "VAR_DIR": str(var_dir), "SEVENTEENTRACK_API_KEY": KEY, **extra}


def manage(env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 180):  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def ok(env: dict[str, str], *args: str) -> str:
    result = manage(env, *args)
    assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    assert "No hostname was supplied" not in result.stderr  # kombu's warning on every command, once
    return result.stdout


def as_json(env: dict[str, str], *args: str) -> dict:
    return json.loads(ok(env, *args, "--json"))


@dataclass
class Service:
    env: dict[str, str]
    base: str
    sim: SimulatorServer
    process: subprocess.Popen[str]
    log_path: Path

    def shipment(self, number: str) -> dict | None:
        found = as_json(self.env, "shipments", "--number", number)["shipments"]
        return found[0] if found else None

    def wait_tracking(self, number: str, *states: str, timeout: float = 120) -> dict:
        def reached() -> dict | None:
            item = self.shipment(number)
            return item if item and item["tracking"] in states else None

        try:
            return wait_for(reached, timeout=timeout, interval=0.5)
        except AssertionError as exc:
            tail = self.log_path.read_text(errors="replace")[-6000:]
            raise AssertionError(
                f"{number} never {'/'.join(states)}: {exc}\n--- service log\n{tail}"
            ) from None


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    var_dir = tmp_path_factory.mktemp("blackbox") / "var"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Manual progression (step_seconds=None): each test moves its own parcels with `advance`.
    with SimulatorServer(KEY, webhook_url=f"{base}/webhooks/17track", step_seconds=None) as sim:
        env = clean_env(var_dir, SEVENTEENTRACK_API_URL=sim.url)
        # To a file, not a pipe: nobody reads a pipe while the tests run, and once its buffer is full
        # the service blocks on its next log line (what made later tests here time out under load).
        log_path = var_dir.parent / "service.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "run", "--port", str(port)],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            try:
                wait_for(lambda: _healthy(base), timeout=120, interval=0.3)
                yield Service(env, base, sim, process, log_path)
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=90)


def _healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=2).ok
    except requests.RequestException:
        return False


def test_help_groups_commands_and_says_how_to_run_them(tmp_path):
    out = ok(clean_env(tmp_path), "--help")
    for section in ("Run the service:", "Shipments:", "Pipeline:", "Cost accountant:"):
        assert section in out
    assert ".venv/bin/python manage.py" in out and "register" in out


def test_a_command_on_a_database_never_migrated_says_what_to_do(tmp_path):
    result = manage(clean_env(tmp_path / "fresh"), "shipments")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: the database is not migrated yet: run `manage.py db upgrade` (or start `manage.py run`)"
    )
    assert ok(clean_env(tmp_path / "fresh"), "db", "upgrade").strip() == "database at head"
    assert ok(clean_env(tmp_path / "fresh"), "shipments").strip() == "no shipments"


def test_register_stop_on_delivery_and_the_read_commands(service):
    env, sim = service.env, service.sim
    out = ok(env, "register", "RR100000001CN", "LX100000002CN", "--carrier", "3011", "--lang", "en",
             "--tag", "order-7")  # fmt: skip
    assert "RR100000001CN: " in out and "LX100000002CN: " in out
    first = service.wait_tracking("RR100000001CN", "tracking")
    assert (first["tag"], first["lang"], first["carrier"]) == ("order-7", "en", 3011)
    # The parcel moves on at 17TRACK until delivered: pushes arrive, the service stops it.
    wait_for(lambda: sim.advance(1, {"RR100000001CN"}) == 0 or _delivered(service), timeout=120)
    stopped = service.wait_tracking("RR100000001CN", "stopped")
    assert stopped["status"] == "delivered" and stopped["origin"] == "registered"

    table = ok(env, "shipments", "--number", "RR100000001CN", "--history")
    header, row, *transitions = table.splitlines()
    assert "ORIGIN" in header and "registered" in row and "delivered" in row
    assert transitions and all("→" in line for line in transitions)
    assert [s["number"] for s in as_json(env, "shipments", "--status", "delivered")["shipments"]] == [
        "RR100000001CN"
    ]
    assert "stoptrack" in ok(env, "operations")
    assert as_json(env, "operations")["counts"]["register"] == {"done": 2}
    assert ok(env, "inbox").startswith("processed: ")
    assert as_json(env, "inbox")["failed"] == []
    assert "requeued" not in ok(env, "inbox", "--requeue-failed")


def _delivered(service: Service) -> bool:
    item = service.shipment("RR100000001CN")
    return bool(item and item["status"] == "delivered")


def test_lifecycle_commands_and_their_local_refusals(service):
    env, sim = service.env, service.sim
    ok(env, "register", "RR200000001CN", "--carrier", "3011")
    service.wait_tracking("RR200000001CN", "tracking")
    sim.advance(1, {"RR200000001CN"})
    wait_for(lambda: (service.shipment("RR200000001CN") or {}).get("last_event_at"), timeout=120)
    assert "RR200000001CN" in ok(env, "changeinfo", "RR200000001CN", "--tag", "t2", "--lang", "de")
    assert "RR200000001CN" in ok(env, "sync", "RR200000001CN")
    assert "RR200000001CN" in ok(env, "stop", "RR200000001CN", "--carrier", "3011")
    service.wait_tracking("RR200000001CN", "stopped")
    assert "RR200000001CN" in ok(env, "retrack", "RR200000001CN")
    service.wait_tracking("RR200000001CN", "tracking")
    again = manage(env, "retrack", "RR200000001CN")
    assert again.returncode == 1 and again.stdout.startswith("refused: ")
    assert "RR200000001CN" in ok(env, "change-carrier", "RR200000001CN", "--to", "21051")
    no_yes = manage(env, "delete", "RR200000001CN")
    assert no_yes.returncode == 1 and "--yes" in no_yes.stdout
    assert "RR200000001CN" in ok(env, "delete", "RR200000001CN", "--yes")
    service.wait_tracking("RR200000001CN", "deleted")


def test_awbs_are_refused_clearly_without_a_cargoai_key(service):
    result = manage(service.env, "register", "176-12345675", "--mode", "push", "--email", "ops@example.com",
                    "--airline-code", "XX")  # fmt: skip
    assert result.returncode == 1
    assert "CargoAi is not configured: set CARGOAI_API_KEY" in result.stdout
    assert service.shipment("176-12345675") is None
    sent_to_17track = manage(service.env, "register", "17612345675", "--provider", "17track")
    assert sent_to_17track.returncode == 0, sent_to_17track.stdout


def test_import_reports_each_row(service, tmp_path):
    csv = tmp_path / "numbers.csv"
    csv.write_text(
        "number,carrier,lang,tag\nRR300000001CN,3011,,a\nRR300000002CN,,,b\n!!,,,c\nRR300000003CN,abc,,d\n"
    )
    result = manage(service.env, "import", str(csv))
    assert result.returncode == 0
    assert result.stdout.strip() == "4 rows: 2 queued, 1 refused, 1 malformed"
    assert "line 4: '!!'" in result.stderr and "line 5: 'RR300000003CN'" in result.stderr
    # The README: writers of the running service and of this command take turns through this file.
    assert (Path(service.env["VAR_DIR"]) / "lifecycle.sqlite3-writer.lock").is_file()


def test_accountant_commands_while_the_service_runs(service):
    """`plan` used to hang 32 s and fail with `database is locked` on SQLite."""
    env = service.env
    started = time.monotonic()
    assert "17track" in ok(env, "plan")
    assert isinstance(as_json(env, "plan"), dict)
    assert time.monotonic() - started < 60
    report = as_json(env, "quota")
    assert report["providers"]["17track"]["unit"] == "quota"
    assert "17track" in ok(env, "quota", "--period", time.strftime("%Y-%m"))
    assert "17track" in ok(env, "quota", "--drift")
    ok(env, "quota", "--allow-overage")
    ok(env, "quota", "--forbid-overage")
    ok(env, "replay")
    ok(env, "replay", "--rules", "17track-per-cycle")
    assert isinstance(as_json(env, "replay"), dict)


def test_reconcile_and_access_commands(service):
    env = service.env
    assert ok(env, "reconcile").startswith("17TRACK tracks ")
    token = ok(env, "create-token", "blackbox").strip()
    answer = requests.get(
        f"{service.base}/api/shipments", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert answer.status_code == 200 and "shipments" in answer.json()
    assert ok(env, "resume-registration").strip() == "registration was not paused"


def test_an_unreachable_provider_is_one_line_not_a_traceback(service):
    env = {**service.env, "SEVENTEENTRACK_API_URL": f"http://127.0.0.1:{free_port()}"}
    for args in (("reconcile",), ("quota", "--drift")):
        result = manage(env, *args)
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stderr.startswith("error: the provider could not be reached"), result.stderr
        assert "Traceback" not in result.stderr


def test_run_refuses_a_taken_port_and_says_how_to_choose_another(service):
    port = service.base.rsplit(":", 1)[1]
    result = manage(service.env, "run", "--port", port, timeout=60)
    assert result.returncode == 2  # an expected failure, like the others
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "--port" in result.stderr
    assert "Traceback" not in result.stderr


def test_simulate_refuses_a_taken_port_instead_of_feeding_the_running_service(service):
    port = service.base.rsplit(":", 1)[1]
    result = manage(service.env, "simulate", "--port", port, "--count", "2", timeout=60)
    assert result.returncode == 2 and f"error: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "leave out --port to let it pick a free one, or choose another with --port" in result.stderr
    assert "(or leave it out)" not in result.stderr


def _snapshot(folder: Path) -> list[tuple[str, float]]:
    return sorted((str(p), p.stat().st_mtime) for p in folder.rglob("*")) if folder.exists() else []


def test_simulate_runs_the_service_until_settled(tmp_path):
    env = clean_env(tmp_path / "var")
    repo_var_before = _snapshot(ROOT / "var")
    result = manage(env, "simulate", "--count", "6", "--step-seconds", "0.3", "--until-settled",
                    "--timeout", "240", timeout=400)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    # In a pipe: no status line every 2 s, no bar, only the result when it ends.
    [last] = result.stdout.splitlines()
    assert " of 6 shipments settled after " in last and "(settled)" in last
    assert "'stopped'" in last and "'register': 1" in last
    assert (tmp_path / "var" / "simulate" / "lifecycle.sqlite3").exists()
    assert _snapshot(ROOT / "var") == repo_var_before  # the repository's own var/ is not touched


def test_serve_answers_health_and_webhooks_logs_access_and_stops_on_sigterm(tmp_path):
    port = free_port()
    env = clean_env(tmp_path / "var", ACCESS_LOG="true")
    command = [sys.executable, "manage.py", "serve", "--port", str(port), "--workers", "1"]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: _healthy(f"http://127.0.0.1:{port}"), timeout=90, interval=0.3)
        answers = _webhooks_on_one_idle_connection(port, idle_seconds=3.0)
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-2000:]
    # A provider's kept-alive connection, idle for a few seconds between deliveries, is still
    # served (gunicorn's 2 s default would have closed it, and the next delivery would fail).
    assert [status for status, _ in answers] == [200, 200]
    assert answers[0][1]["inbox_id"] < answers[1][1]["inbox_id"]
    # ACCESS_LOG=true (README): a line per request, in the service's format.
    assert (out + err).count('"POST /webhooks/17track HTTP/1.1" 200') == 2, (out + err)[-2000:]


def test_web_threads_come_from_the_environment_and_serve_checks_its_option(tmp_path):
    env = clean_env(tmp_path / "var", WEB_THREADS="5")
    probe = "from lifecycle.asgi import app; print(app.downstream.executor._max_workers)"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.split()[-1] == "5", result.stderr[-2000:]
    refused = manage(env, "serve", "--threads", "0", "--port", str(free_port()))
    assert refused.returncode == 2 and "--threads" in refused.stderr and "Traceback" not in refused.stderr


def test_serve_bounds_the_connections_a_process_holds_and_answers_503_beyond(tmp_path):
    """As gunicorn's own workers do (`--worker-connections`): a flood is refused with a status the
    provider retries, not held in memory, and the process serves again once it passes."""
    port = free_port()
    env = clean_env(tmp_path / "var", GUNICORN_CMD_ARGS="--worker-connections 3")
    command = [sys.executable, "manage.py", "serve", "--port", str(port), "--workers", "1"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    held: list[socket.socket] = []
    try:
        wait_for(lambda: _healthy(f"http://127.0.0.1:{port}"), timeout=90, interval=0.3)
        for _ in range(2):  # two webhooks whose bodies never come: the process holds both
            connection = socket.create_connection(("127.0.0.1", port), timeout=30)
            connection.sendall(b"POST /webhooks/17track HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
            held.append(connection)
        time.sleep(0.5)
        beyond = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=30).status_code
        for connection in held:
            connection.close()
        after = wait_for(lambda: _healthy(f"http://127.0.0.1:{port}"), timeout=30, interval=0.3)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert (beyond, after) == (503, True)


def _webhooks_on_one_idle_connection(port: int, idle_seconds: float) -> list[tuple[int, dict]]:
    import http.client

    from lifecycle.providers.seventeentrack import webhook as st
    from simulators.seventeentrack import pushes
    from tests.helpers import delivered

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    answers = []
    for number in ("RR000000001CN", "RR000000002CN"):
        body = pushes.encode(delivered(number))
        connection.request("POST", "/webhooks/17track", body=body, headers={"sign": st.sign(body, KEY)})
        response = connection.getresponse()
        answers.append((response.status, json.loads(response.read())))
        time.sleep(idle_seconds)
    connection.close()
    return answers


def test_status_cleanup_admin_and_endpoint_commands(service):
    env = service.env
    status = as_json(env, "status")
    assert isinstance(status, dict) and status
    assert "inbox" in ok(env, "status").lower()
    jobs = as_json(env, "cleanup", "--list")
    assert "retention" in json.dumps(jobs)
    assert ok(env, "cleanup", "stale", "--dry-run").startswith("stale (dry run: nothing changed)")
    assert isinstance(as_json(env, "cleanup", "retention"), dict)
    admin = manage(
        env, "create-admin", "ops@example.com", "--password-stdin", stdin="a long enough pass phrase\n"
    )
    assert admin.returncode == 0, admin.stdout + admin.stderr
    added = as_json(env, "endpoint", "add", "http://127.0.0.1:9/hook", "--events", "delivered,exception")
    endpoint_id = str(added["id"])
    assert added["secret"].startswith("whsec_")
    listed = as_json(env, "endpoint", "list")
    assert endpoint_id in json.dumps(listed)
    ok(env, "endpoint", "disable", endpoint_id)
    ok(env, "endpoint", "enable", endpoint_id)
    assert as_json(env, "endpoint", "attempts", endpoint_id) == {"attempts": []}  # nothing sent yet
    ok(env, "endpoint", "replay", "--since", "2026-01-01T00:00:00", "--endpoint", endpoint_id)
    ok(env, "endpoint", "remove", endpoint_id)
