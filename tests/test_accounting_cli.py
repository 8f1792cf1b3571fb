"""The accountant's commands as a user types them: `quota`, `plan`, `replay` on the embedded default.

Read commands must never take SQLite's write lock: `plan` used to read the CargoAi account on a
second session while its own write transaction was open, and waited 30 s for itself.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from config.settings import PROJECT_ROOT, get_settings
from lifecycle.cli import cli

# A generous ceiling for a command that should take about a second: it fails a hang, not a slow machine.
CEILING_SECONDS = 30
# As the README says to run commands; the interpreter running the tests when there is no .venv (CI).
VENV_PYTHON = PROJECT_ROOT / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable
READ_COMMANDS = [
    ["quota"],
    ["quota", "--json"],
    ["plan"],
    ["plan", "--json"],
    ["replay"],
    ["replay", "--json", "--rules", "17track-per-cycle"],
    ["shipments"],
    ["shipments", "--json", "--history"],
    ["operations"],
    ["inbox"],
    ["status", "--json"],
    ["cleanup", "--list"],
    ["endpoint", "list"],
]


def subprocess_env(tmp_path: Path, database: Path) -> dict[str, str]:
    """The developer's own settings removed, so the command sees only this test's database."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "SEVENTEENTRACK_", "CARGOAI_"))
    }
    return {**env, "DATABASE_URL": f"sqlite:///{database}", "VAR_DIR": str(tmp_path / "var"),
            "BROKER_URL": "filesystem://"}  # fmt: skip


def manage(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, str(PROJECT_ROOT / "manage.py"), *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=CEILING_SECONDS,
    )  # fmt: skip


def test_plan_finishes_quickly_on_a_fresh_sqlite_database(tmp_path):
    env = subprocess_env(tmp_path, tmp_path / "fresh.sqlite3")
    assert manage(env, tmp_path, "db", "upgrade").returncode == 0
    text = manage(env, tmp_path, "plan")
    assert text.returncode == 0, text.stderr
    assert "observed 0 month(s)" in text.stdout and "cheapest: free" in text.stdout
    as_json = manage(env, tmp_path, "plan", "--json")
    assert as_json.returncode == 0, as_json.stderr
    advice = json.loads(as_json.stdout)
    assert (advice["months_observed"], advice["cheapest"]) == (0, "free")
    assert advice["cargoai_push_vs_pull"]["awbs_observed"] == 0


@pytest.fixture
def sqlite_env(sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A migrated SQLite database the in-process CLI reads; returns its path."""
    database = tmp_path / "lifecycle.sqlite3"
    shutil.copy(sqlite_template, database)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("BROKER_URL", "filesystem://")
    monkeypatch.setattr("lifecycle.cli.context._app", None)  # an app built for another test's database
    get_settings.cache_clear()
    yield database
    dispose_cli_app()
    get_settings.cache_clear()


def dispose_cli_app() -> None:
    """Close the database connections of the app a write command built, before its file goes."""
    from lifecycle.cli import context
    from lifecycle.extensions import db

    if context._app is not None:
        with context._app.app_context():
            db.engine.dispose()  # type: ignore[union-attr]


@pytest.mark.parametrize("args", READ_COMMANDS, ids=" ".join)
def test_read_commands_answer_while_another_process_holds_the_write_lock(sqlite_env, args):
    writer = sqlite3.connect(sqlite_env, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a worker in the middle of a write transaction
    try:
        result = CliRunner().invoke(cli, args)
    finally:
        writer.rollback()
        writer.close()
    assert result.exit_code == 0, result.output
    assert "locked" not in result.output


def one_push_for_a_tracked_shipment(database: Path) -> None:
    """A shipment registered earlier (its charge outside this ledger) and one push that moved it."""
    from sqlalchemy.orm import Session

    from lifecycle.db import make_engine
    from lifecycle.inbox.models import InboxEvent
    from lifecycle.shipments.models import Shipment
    from simulators.seventeentrack import pushes
    from tests.helpers import in_transit

    engine = make_engine(f"sqlite:///{database}")
    with Session(engine) as session, session.begin():
        session.add(Shipment(provider="17track", number="RR1", carrier=3011, tracking="tracking"))
        session.add(InboxEvent(provider="17track", body=pushes.encode(in_transit("RR1"))))
    engine.dispose()


def test_what_if_replay_says_what_differs(sqlite_env):
    one_push_for_a_tracked_shipment(sqlite_env)
    result = CliRunner().invoke(cli, ["replay", "--rules", "17track-per-cycle"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # The replayed amount is a sum of 10-decimal zeros: said as 0, not 0E-10.
    assert lines[1].endswith(
        "live ledger (17track-official): 0 units, 0 CNY; replay (17track-per-cycle): 1 units, 0 CNY"
    )
    assert "no differences" not in result.output
    assert lines[2] == (
        "under 17track-per-cycle this history would cost 1 unit(s) more than the live ledger "
        "under 17track-official"
    )
    assert "  rule 17track.update_cycle: live 0 units, replay 1 units (+1)" in lines
    assert "  bucket monthly_free: live 0 units, replay 1 units (+1)" in lines
    priced = json.loads(CliRunner().invoke(cli, ["replay", "--json", "--rules", "17track-per-cycle"]).output)
    assert (priced["live"]["money"], priced["replay"]["money"]) == ("0", "0")
    same = CliRunner().invoke(cli, ["replay"])
    assert "no differences: the replay rebuilt the live ledger entry for entry" in same.output


def test_replay_names_the_known_rule_sets_for_an_unknown_one(sqlite_env):
    result = CliRunner().invoke(cli, ["replay", "--rules", "per-push"])
    assert result.exit_code == 2
    assert "17track-official, 17track-per-cycle" in result.output


def test_quota_writes_only_what_its_options_ask_and_then_reports(sqlite_env, sim, monkeypatch):
    from tests.conftest import API_KEY

    monkeypatch.setenv("SEVENTEENTRACK_API_URL", sim.url)
    monkeypatch.setenv("SEVENTEENTRACK_API_KEY", API_KEY)
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["quota", "--json", "--drift", "--allow-overage"])
    assert result.exit_code == 0, result.output
    drift = json.loads(result.output)["providers"]["17track"]["drift"]
    assert (drift["ours"], drift["theirs"]) == (0, 0)
    assert {"getquota:17track", "overage-allowed:17track"} <= service_state_keys(sqlite_env)
    assert CliRunner().invoke(cli, ["quota", "--forbid-overage"]).exit_code == 0
    assert "overage-allowed:17track" not in service_state_keys(sqlite_env)


def service_state_keys(database: Path) -> set[str]:
    reader = sqlite3.connect(database)
    try:
        return {key for (key,) in reader.execute("SELECT key FROM service_state")}
    finally:
        reader.close()
