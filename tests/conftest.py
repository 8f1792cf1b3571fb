"""Fixtures: every pipeline test runs on both runtime modes.

- `sqlite`: the embedded default (SQLite file, filesystem broker).
- `postgresql`: real PostgreSQL + Redis. In CI (CI=true) a missing service is a failure; on a
  laptop without them these tests skip and say how to enable them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from sqlalchemy import text

from config.settings import Settings
from lifecycle import create_app, migrate
from lifecycle.extensions import db

PG_ADMIN = os.environ.get("TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _redis_url() -> str:
    """Database 15 (or TEST_REDIS_URL's); under `pytest -n N` each worker takes its own, counting
    down, since tests flush their database and hold locks in it."""
    base = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, …
    if not worker:
        return base
    prefix, number = base.rsplit("/", 1)
    return f"{prefix}/{int(number) - int(worker.removeprefix('gw'))}"


REDIS_URL = _redis_url()
API_KEY = "test-17track-key"
IN_CI = os.environ.get("CI", "").lower() == "true"


def _services_missing() -> str | None:
    try:
        psycopg.connect(PG_ADMIN, connect_timeout=3).close()
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as exc:
        return f"{exc.__class__.__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    missing = _services_missing()
    if missing:
        if IN_CI:
            pytest.fail(f"CI needs PostgreSQL and Redis: {missing}")
        pytest.skip(
            f"PostgreSQL/Redis not reachable ({missing}); start them on 127.0.0.1:5432 and :6379 "
            "or set TEST_PG_ADMIN / TEST_REDIS_URL to run the integration tests"
        )
    name = f"lifecycle_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    url = f"{base}/{name}"
    migrate.upgrade(url)
    yield url
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def settings_factory(backend: str, tmp_path: Path, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Settings for this backend; keyword overrides win (e.g. a simulator URL)."""
    if backend == "postgresql":
        url = request.getfixturevalue("postgres_url")
        engine_url = url
        redis.Redis.from_url(REDIS_URL).flushdb()
        base = {"database_url": engine_url, "broker_url": REDIS_URL, "limiter_url": REDIS_URL}
        _truncate(url)
    else:
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "lifecycle.sqlite3"
        shutil.copy(template, path)
        base = {"database_url": f"sqlite:///{path}", "broker_url": "filesystem://"}

    def make(**overrides: object) -> Settings:
        values = {
            "var_dir": tmp_path / "var",
            "seventeentrack_api_key": API_KEY,
            "sweep_pending_after_seconds": 0,
            "_env_file": None,
            **base,
            **overrides,
        }
        return Settings(**values)  # type: ignore[arg-type]

    return make


def _truncate(url: str) -> None:
    from lifecycle import models  # noqa: F401  (every table on the metadata)
    from lifecycle.db import Base, make_engine

    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def settings(settings_factory) -> Settings:  # type: ignore[no-untyped-def]
    return settings_factory()


@pytest.fixture
def app(settings: Settings):  # type: ignore[no-untyped-def]
    app = create_app(settings)
    yield app
    db.engine.dispose()  # type: ignore[union-attr]


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def sim():  # type: ignore[no-untyped-def]
    """The 17TRACK simulator over real HTTP, with this suite's API key."""
    from simulators.seventeentrack import SimulatorServer

    with SimulatorServer(API_KEY) as server:
        yield server


@pytest.fixture
def sim_app(settings_factory, sim):  # type: ignore[no-untyped-def]
    """The app pointed at the simulator."""
    app = create_app(settings_factory(seventeentrack_api_url=sim.url))
    yield app
    db.engine.dispose()  # type: ignore[union-attr]


@pytest.fixture
def cli_env(settings, monkeypatch):  # type: ignore[no-untyped-def]
    """The environment of an in-process `manage.py` (click's CliRunner) pointed at this test's
    database and broker, with the settings cache cleared around it."""
    from config.settings import get_settings
    from lifecycle.cli import context

    monkeypatch.setattr(context, "_app", None)  # the CLI keeps its app between invocations
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("BROKER_URL", settings.broker_url)
    monkeypatch.setenv("VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("SEVENTEENTRACK_API_KEY", API_KEY)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def run_cli(cli_env):  # type: ignore[no-untyped-def]
    """`run_cli("shipments", "--json")`: the command's output, asserting it exited 0."""
    from click.testing import CliRunner

    from lifecycle.cli import cli

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    return run


@pytest.fixture
def embedded(tmp_path: Path) -> dict[str, str]:
    """The environment of an embedded (SQLite) `manage.py` subprocess with a fresh, migrated state
    directory; run it from the project root."""
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "BROKER_URL")}
    env.update(VAR_DIR=str(tmp_path / "var"), SEVENTEENTRACK_API_KEY=API_KEY, COLUMNS="100")
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "manage.py", "db", "upgrade"], cwd=root, env=env, check=True, timeout=180)
    return env
