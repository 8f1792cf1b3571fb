"""`manage.py db upgrade` as a release step on every machine: one runs it at a time on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from lifecycle import migrate
from tests.conftest import PG_ADMIN
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration


@pytest.fixture
def fresh_database(postgres_url: str) -> Iterator[tuple[str, str]]:
    """(SQLAlchemy URL, psycopg URL) of an empty database, dropped afterwards."""
    name = f"lifecycle_migrate_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    plain = f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    yield plain.replace("postgresql://", "postgresql+psycopg://"), plain
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _upgrade_in_a_process(url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.Popen(
        [sys.executable, "manage.py", "db", "upgrade"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _head(plain: str) -> list[tuple[str]]:
    with psycopg.connect(plain) as connection:
        return connection.execute("SELECT version_num FROM alembic_version").fetchall()


def _waiting_for_the_lock(plain: str) -> int:
    with psycopg.connect(plain) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()
    return row[0] if row else 0


def test_two_machines_upgrading_a_fresh_database_at_once_both_succeed(fresh_database):
    url, plain = fresh_database
    runs = [_upgrade_in_a_process(url) for _ in range(2)]
    outputs = [run.communicate(timeout=240)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert len(_head(plain)) == 1


def test_an_upgrade_waits_while_another_holds_the_migration_lock(fresh_database):
    url, plain = fresh_database
    with psycopg.connect(plain, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (migrate.ADVISORY_LOCK_KEY,))
        waiting = _upgrade_in_a_process(url)
        # The second machine is parked on the lock, and has created nothing yet.
        wait_for(lambda: _waiting_for_the_lock(plain) == 1, timeout=120, interval=0.1)
        assert waiting.poll() is None
        with psycopg.connect(plain) as connection:
            assert connection.execute("SELECT to_regclass('alembic_version')").fetchone() == (None,)
        holder.execute("SELECT pg_advisory_unlock(%s)", (migrate.ADVISORY_LOCK_KEY,))
    output = waiting.communicate(timeout=240)[0]
    assert waiting.returncode == 0, output
    assert len(_head(plain)) == 1
