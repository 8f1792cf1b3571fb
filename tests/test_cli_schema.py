"""A database behind the code is refused in one line before any command uses it.

A database created at an older revision used to make `shipments` print a 72-line `no such column`
traceback, while `register` quietly wrote into the old schema. Every command that uses the database
now checks the revision first; the process commands refuse to start on it (or, on the embedded
default, bring it to head and say so); and a read on a never-migrated VAR_DIR creates nothing.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from lifecycle import migrate
from tests.conftest import PG_ADMIN, _services_missing

ROOT = Path(__file__).resolve().parent.parent
OLD = "0006"
HEAD = migrate.head_revision()
BEHIND = f"error: the database is at {OLD}, this code expects {HEAD}: run `manage.py db upgrade`"
_OURS = ("DATABASE_URL", "BROKER_URL", "LIMITER_URL", "VAR_DIR", "CARGOAI_", "SEVENTEENTRACK_")


def env_for(var_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    return {**env, "VAR_DIR": str(var_dir), "SEVENTEENTRACK_API_KEY": "schema-test-key", **extra}


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


@pytest.fixture
def old_database(tmp_path: Path) -> Path:
    var_dir = tmp_path / "var"
    migrate.upgrade(f"sqlite:///{var_dir / 'lifecycle.sqlite3'}", OLD)
    return var_dir


def test_the_cheap_head_is_alembics_head():
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    assert migrate.head_revision() == script.get_current_head()


@pytest.mark.parametrize(
    "args", [("shipments",), ("shipments", "--json"), ("register", "RR123456789CN"), ("endpoint", "list")]
)
def test_a_command_on_a_database_behind_the_code_says_so_in_one_line(old_database, args):
    result = manage(env_for(old_database), *args)
    assert (result.returncode, result.stderr.strip(), result.stdout) == (2, BEHIND, "")
    reader = sqlite3.connect(old_database / "lifecycle.sqlite3")
    try:
        assert reader.execute("SELECT count(*) FROM shipments").fetchone() == (0,)  # nothing written
        assert reader.execute("SELECT version_num FROM alembic_version").fetchone() == (OLD,)
    finally:
        reader.close()


def test_help_of_a_command_needs_no_database(tmp_path):
    result = manage(env_for(tmp_path / "never"), "shipments", "--help")
    assert result.returncode == 0 and "--history" in result.stdout


def test_after_db_upgrade_the_same_commands_work(old_database):
    env = env_for(old_database)
    assert manage(env, "db", "upgrade").returncode == 0
    listed = manage(env, "shipments")
    assert (listed.returncode, listed.stdout.strip()) == (0, "no shipments"), listed.stderr


def test_a_read_command_on_a_never_migrated_var_dir_creates_nothing(tmp_path):
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    for args in (("shipments",), ("operations",), ("inbox",), ("quota",)):
        result = manage(env_for(var_dir), *args)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip() == f"error: {migrate.NOT_MIGRATED}"
    assert list(var_dir.iterdir()) == []


def test_a_worker_refuses_to_start_on_a_database_behind_the_code(old_database):
    result = manage(env_for(old_database), "worker")
    assert result.returncode == 2
    assert result.stderr.strip() == f"{BEHIND}; not starting"


def test_serve_refuses_a_postgresql_database_behind_the_code(tmp_path):
    """A server database is migrated by a release step, never by `serve`: it refuses, saying which."""
    missing = _services_missing()
    if missing:
        pytest.skip(f"PostgreSQL not reachable: {missing}")
    name = f"lifecycle_schema_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{PG_ADMIN.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    try:
        migrate.upgrade(url, OLD)
        env = env_for(tmp_path / "var", DATABASE_URL=url)
        served = manage(env, "serve", "--port", "0")
        assert (served.returncode, served.stderr.strip()) == (2, f"{BEHIND}; not starting")
        listed = manage(env, "shipments")
        assert (listed.returncode, listed.stderr.strip()) == (2, BEHIND)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_run_on_the_embedded_default_brings_an_old_database_to_head_and_says_so(old_database, monkeypatch):
    """`run` migrates its own SQLite file; this checks the step it takes before starting anything."""
    import click

    from config.settings import get_settings
    from lifecycle.cli import processes

    monkeypatch.setenv("VAR_DIR", str(old_database))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    get_settings.cache_clear()
    said: list[str] = []
    monkeypatch.setattr(click, "echo", lambda message, **_: said.append(message))
    try:
        processes._database_ready(upgrade_embedded=True)
    finally:
        get_settings.cache_clear()
    assert said == [f"lifecycle: database upgraded from {OLD} to {HEAD}"]
    assert migrate.current_revision(f"sqlite:///{old_database / 'lifecycle.sqlite3'}") == HEAD
