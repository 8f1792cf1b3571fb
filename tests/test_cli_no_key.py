"""Commands that need 17TRACK say so when no key is set, instead of 17TRACK's 401 or a queue that
retries forever (the newcomer's first `register`, before the key is in `.env`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lifecycle import migrate
from lifecycle.cli.errors import MISSING_17TRACK_KEY
from lifecycle.providers.seventeentrack.registration import NO_KEY as NO_17TRACK_KEY
from tests.test_cli_schema import env_for, manage


@pytest.fixture
def no_key(tmp_path: Path) -> dict[str, str]:
    var_dir = tmp_path / "var"
    migrate.upgrade(f"sqlite:///{var_dir / 'lifecycle.sqlite3'}")
    # A provider URL nobody listens on: had a command called it, the answer would be unreachable.
    env = env_for(var_dir, SEVENTEENTRACK_API_URL="http://127.0.0.1:9")
    del env["SEVENTEENTRACK_API_KEY"]
    return env


def rows(env: dict[str, str], table: str) -> int:
    connection = sqlite3.connect(Path(env["VAR_DIR"]) / "lifecycle.sqlite3")
    try:
        return connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        connection.close()


def test_register_refuses_17track_numbers_and_queues_nothing(no_key):
    result = manage(no_key, "register", "RR123456789CN", "--carrier", "3011")
    assert result.returncode == 1
    assert result.stdout.strip() == f"RR123456789CN: {NO_17TRACK_KEY}"
    assert (rows(no_key, "shipments"), rows(no_key, "operations")) == (0, 0)


COMMANDS_CALLING_17TRACK = [("reconcile",), ("reconcile", "--json"), ("quota", "--drift")]


@pytest.mark.parametrize("args", COMMANDS_CALLING_17TRACK, ids=" ".join)
def test_commands_that_call_17track_now_name_the_missing_key(no_key, args):
    result = manage(no_key, *args)
    assert (result.returncode, result.stderr.strip()) == (2, f"error: {MISSING_17TRACK_KEY}")
    assert result.stdout == ""


def test_import_refuses_17track_rows_with_the_reason_and_queues_nothing(no_key, tmp_path):
    csv = tmp_path / "numbers.csv"
    csv.write_text("number,carrier,lang,tag\nRR300000001CN,3011,,a\n")
    result = manage(no_key, "import", str(csv))
    assert f"line 2: 'RR300000001CN': {NO_17TRACK_KEY}" in result.stderr
    assert "1 rows: 0 queued, 1 refused, 0 malformed" in result.stdout
    assert (rows(no_key, "shipments"), rows(no_key, "operations")) == (0, 0)
