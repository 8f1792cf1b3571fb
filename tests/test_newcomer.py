"""What a newcomer met first: failures told in one line, provider retries visible, the API's
change-carrier body named as the CLI names it, AWBs refused without a CargoAi key, the supervisor
restarting a dead child, and the embedded broker never handing out half a message."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from kombu import Connection
from sqlalchemy.exc import OperationalError, ProgrammingError

from config.settings import PROJECT_ROOT
from lifecycle import create_app, jobs
from lifecycle.api.tokens import create_token
from lifecycle.broker import TRANSPORT
from lifecycle.cli import cli
from lifecycle.cli.errors import explain_failures
from lifecycle.cli.startup import provider_warnings
from lifecycle.cli.supervisor import Supervisor
from lifecycle.extensions import db
from lifecycle.inbox import service as inbox
from lifecycle.operations import pause
from lifecycle.operations.models import ServiceState
from lifecycle.providers.base import ProviderError
from lifecycle.providers.cargoai.subscriptions import NO_KEY as NO_CARGOAI_KEY
from lifecycle.providers.seventeentrack import commands
from lifecycle.shipments.registration import Registration, register
from simulators.seventeentrack import SimulatorServer
from tests.conftest import API_KEY
from tests.helpers import shipment, wait_for

NUMBER = "RR123456789CN"


def _failure_of(exc: Exception) -> tuple[int, str]:
    runner = CliRunner()

    @click.command()
    def failing() -> None:
        with explain_failures():
            raise exc

    result = runner.invoke(failing)
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (OperationalError("SELECT", {}, Exception("no such table: shipments")), "db upgrade"),
        (ProgrammingError("SELECT", {}, Exception('relation "shipments" does not exist')), "db upgrade"),
        (OperationalError("SELECT", {}, Exception("no such column: shipments.status_at")), "db upgrade"),
        (
            ProgrammingError("SELECT", {}, Exception("column shipments.status_at does not exist")),
            "db upgrade",
        ),
        (OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked")), "try again in a moment"),
        (OperationalError("x", {}, Exception("connection refused")), "check DATABASE_URL"),
        (ProviderError("gettracklist: ConnectionError: refused", transient=True), "SEVENTEENTRACK_API_URL"),
        (ProviderError("getquota: -18010002 invalid key", transient=False), "check the API key"),
    ],
)
def test_expected_failures_are_one_line_with_what_to_do(exc, expected):
    code, output = _failure_of(exc)
    assert code == 2
    assert output.startswith("error: ") and expected in output and output.count("\n") == 1


def test_a_bug_keeps_its_traceback():
    code, _ = _failure_of(KeyError("a bug"))
    assert code == 1  # click's exit for an unexpected exception: not dressed up as "expected"


def test_run_warns_about_a_missing_or_placeholder_key(settings_factory):
    missing = provider_warnings(settings_factory(seventeentrack_api_key=""))
    assert len(missing) == 1 and "manage.py simulate" in missing[0]
    placeholder = provider_warnings(settings_factory(seventeentrack_api_key="<your 17token>"))
    assert "placeholder" in placeholder[0]
    real = provider_warnings(settings_factory(seventeentrack_api_key="7F3A9C01D2E4B5A6"))
    assert real == []
    simulated = settings_factory(
        seventeentrack_api_key="your-key", seventeentrack_api_url="http://127.0.0.1:9"
    )
    assert provider_warnings(simulated) == []


def documented_example_keys() -> set[str]:
    """Every 17TRACK key the README and .env.example show (`KEY=…`, the simulator's `--key …`)."""
    text = "\n".join((PROJECT_ROOT / name).read_text() for name in ("README.md", ".env.example"))
    value = r"(<[^>]*>|[^\s,`'\"]+)"
    assigned = re.findall(rf"SEVENTEENTRACK_API_KEY={value}", text)
    return set(assigned) | set(re.findall(rf"--key {value}", text))


def test_the_documentation_s_own_example_keys_are_placeholders_against_the_real_17track(settings_factory):
    """The README's simulator key `demo-key`, copied into .env with the default URL, was not flagged."""
    examples = documented_example_keys()
    assert {"demo-key", "<your 17token>"} <= examples
    for key in sorted(examples | {"sim", "simulator", "test-key", "example", "sample-17token", "..."}):
        warnings = provider_warnings(settings_factory(seventeentrack_api_key=key))
        assert [w for w in warnings if "placeholder" in w], key
    for real in ("7F3A9C01D2E4B5A6C7D8E9F0A1B2C3D4", "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"):
        assert provider_warnings(settings_factory(seventeentrack_api_key=real)) == []


@pytest.fixture
def sim_app(settings_factory):  # type: ignore[no-untyped-def]
    with SimulatorServer(API_KEY, rate_per_second=50, step_seconds=None, not_found_rate=0) as sim:
        app = create_app(settings_factory(seventeentrack_api_url=sim.url, seventeentrack_rate_per_second=50))
        yield app, sim
        db.engine.dispose()  # type: ignore[union-attr]


def _run(app, command, *args, **kwargs):  # type: ignore[no-untyped-def]
    with app.app_context(), db.new_session() as session, session.begin():
        return command(session, *args, **kwargs)


def _send(app):  # type: ignore[no-untyped-def]
    with app.app_context():
        jobs.flush_operations()
        inbox.drain(db.new_session, batch_size=100)


@pytest.mark.parametrize("body_key", ["to", "carrier_new"])
def test_api_change_carrier_takes_to_like_the_cli(sim_app, body_key):
    app, sim = sim_app
    _run(app, register, [Registration(NUMBER, 3011)])
    _send(app)
    sim.advance(steps=1, numbers=[NUMBER])
    _run(app, commands.sync, NUMBER)
    _send(app)
    with app.app_context(), db.new_session() as session, session.begin():
        token = create_token(session, "t")
    answer = app.test_client().post(
        f"/api/shipments/17track/{NUMBER}/change-carrier",
        json={body_key: 21051},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 202, answer.json
    _send(app)
    with app.app_context():
        assert shipment(NUMBER).carrier == 21051


def test_awbs_are_refused_without_a_cargoai_key_and_nothing_is_queued(app, settings_factory):
    unconfigured = settings_factory(cargoai_api_key="")
    with app.app_context(), db.new_session() as session, session.begin():
        outcomes = register(session, [Registration("176-12345675")], unconfigured)
    assert [(o.ok, o.message) for o in outcomes] == [(False, NO_CARGOAI_KEY)]
    with app.app_context():
        assert shipment("176-12345675") is None


def test_retries_are_visible_in_operations_and_shipments(settings_factory, cli_env):
    # A provider that refuses connections: the registration is retried, and the operator sees why.
    app = create_app(settings_factory(seventeentrack_api_url="http://127.0.0.1:9", flush_max_seconds=3))
    _run(app, register, [Registration(NUMBER, 3011)])
    with app.app_context():
        jobs.flush_operations()
    runner = CliRunner()
    operations = runner.invoke(cli, ["operations"], catch_exceptions=False).output
    assert f"retrying register {NUMBER} (attempt 1, next " in operations
    assert "ConnectionError" in operations
    table = runner.invoke(cli, ["shipments"], catch_exceptions=False).output
    assert "register retrying (attempt 1" in table.splitlines()[1]
    listed = json.loads(runner.invoke(cli, ["shipments", "--json"], catch_exceptions=False).output)
    assert listed["shipments"][0]["retrying"]["kind"] == "register"
    db.engine.dispose()  # type: ignore[union-attr]


def test_supervisor_restarts_a_dead_child_and_stops_all_on_sighup(tmp_path):
    marker = tmp_path / "starts"
    # A child that records each start and dies at once the first two times, then stays up.
    script = (
        "import sys, time, pathlib; p = pathlib.Path(sys.argv[1]); "
        "n = len(p.read_text()) if p.exists() else 0; p.write_text('x' * (n + 1)); "
        "sys.exit(3) if n < 2 else time.sleep(600)"
    )
    lines: list[str] = []
    supervisor = Supervisor({"flaky": [sys.executable, "-c", script, str(marker)]}, Path.cwd(), lines.append)
    thread = threading.Thread(target=supervisor.run)
    with _signals_in_thread():
        thread.start()
        wait_for(lambda: marker.exists() and len(marker.read_text()) == 3, timeout=60)
        pid = supervisor.children[0].process.pid  # type: ignore[union-attr]
        supervisor._request_stop(signal.SIGHUP, None)
        thread.join(timeout=60)
    assert [line for line in lines if "exited" in line] == [
        "lifecycle: flaky exited with exit code 3; restarting in 1 s",
        "lifecycle: flaky exited with exit code 3; restarting in 2 s",
    ]
    assert lines[-1] == "lifecycle: SIGHUP received, stopping everything"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


class _signals_in_thread:
    """`signal.signal` works only in the main thread; the supervisor's loop runs in another here."""

    def __enter__(self) -> None:
        self._original = signal.signal
        signal.signal = lambda *_args: None  # type: ignore[assignment]

    def __exit__(self, *_exc: object) -> None:
        signal.signal = self._original  # type: ignore[assignment]


def test_the_embedded_broker_never_hands_out_a_partial_or_duplicate_message(tmp_path):
    """Writers in other processes race readers here: every message is read once, whole."""
    queue = tmp_path / "queue"
    queue.mkdir()
    options = {
        "data_folder_in": str(queue),
        "data_folder_out": str(queue),
        "control_folder": str(tmp_path),
        "polling_interval": 0.001,
    }
    writer = (
        "import sys; from kombu import Connection; "
        f"c = Connection('filesystem://', transport={TRANSPORT!r}, transport_options={options!r}); "
        "q = c.SimpleQueue('q'); [q.put({'n': int(sys.argv[1]) * 1000 + i, 'pad': 'x' * 1000000}) "
        "for i in range(60)]; c.release()"
    )
    writers = [subprocess.Popen([sys.executable, "-c", writer, str(w)]) for w in range(3)]
    seen: list[int] = []
    with Connection("filesystem://", transport=TRANSPORT, transport_options=options) as connection:
        simple = connection.SimpleQueue("q")
        deadline = time.monotonic() + 120
        while len(seen) < 180 and time.monotonic() < deadline:
            try:
                message = simple.get(timeout=0.5)
            except simple.Empty:
                continue
            assert len(message.payload["pad"]) == 1000000
            seen.append(message.payload["n"])
            message.ack()
    for process in writers:
        assert process.wait(timeout=60) == 0
    assert sorted(seen) == sorted(w * 1000 + i for w in range(3) for i in range(60))


def test_replay_says_what_it_can_rebuild_once_retention_purged_old_bodies(app, client, cli_env):
    import time_machine

    from tests.cleanup_helpers import NOW
    from tests.cleanup_helpers import run as run_job
    from tests.helpers import delivered, in_transit, post_push

    with time_machine.travel(NOW - timedelta(days=100), tick=False):
        post_push(client, in_transit("RR1"))
    with time_machine.travel(NOW - timedelta(days=1), tick=False):
        post_push(client, delivered("RR2"))
    with app.app_context():
        inbox.drain(db.new_session, batch_size=10)
    runner = CliRunner()
    whole = json.loads(runner.invoke(cli, ["replay", "--json"], catch_exceptions=False).output)
    assert whole["window"]["complete"] is True and whole["inbox_rows"] == 2
    with time_machine.travel(NOW, tick=False):
        assert run_job(app, "retention")["inbox_bodies_purged"] == 1
    text = runner.invoke(cli, ["replay"], catch_exceptions=False).output
    assert text.startswith("replay can rebuild only what arrived after 2026-08-12")
    partial = json.loads(runner.invoke(cli, ["replay", "--json"], catch_exceptions=False).output)
    assert partial["window"]["complete"] is False and partial["inbox_rows"] == 1


def test_operations_lists_only_pauses_among_the_service_state_rows(app, run_cli):
    # service_state also keeps the getquota snapshot and overage permissions: no pause, no `code`.
    with app.app_context(), db.new_session() as session, session.begin():
        session.add(ServiceState(key="quota:17track:getquota", value={"quota_used": 5}))
        pause.pause(session, "17track", "register", -18019907, "quota used up", None)
    text = run_cli("operations")
    assert "PAUSED pause:17track:register: -18019907 quota used up (until resumed)" in text
    assert "getquota" not in text
    listed = json.loads(run_cli("operations", "--json"))
    assert list(listed["pauses"]) == ["pause:17track:register"]
