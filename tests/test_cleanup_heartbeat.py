"""Worker and beat heartbeats in /healthz; `manage.py beat` on a fresh checkout; `manage.py cleanup`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
import time_machine
from sqlalchemy import create_engine, text

from lifecycle import migrate
from tests.cleanup_helpers import NOW, add_shipment, runs, shipment
from tests.conftest import REDIS_URL, _services_missing
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parent.parent


def test_healthz_says_no_worker_has_run_until_one_does(app, client):
    body = client.get("/healthz").get_json()
    assert body["worker_heartbeat_age_seconds"] is None
    assert body["workers"] == {"alive": 0, "problem": "no worker has run yet"}
    from workers import tasks

    with time_machine.travel(NOW, tick=False):
        with app.app_context():
            tasks.heartbeat.apply().get()
        fresh = client.get("/healthz").get_json()
    assert fresh["worker_heartbeat_age_seconds"] == 0.0 and fresh["workers"] == {"alive": 1, "problem": None}
    with time_machine.travel(NOW + timedelta(minutes=12), tick=False):
        stale = client.get("/healthz")
    body = stale.get_json()
    assert stale.status_code == 200 and body["worker_heartbeat_age_seconds"] == 720.0
    assert body["workers"] == {"alive": 0, "problem": "no worker has run for 12 minutes"}


def test_healthz_says_when_beat_is_silent_even_with_a_worker_alive(app, client):
    from lifecycle.cleanup.heartbeat import BEAT, WORKER, record
    from lifecycle.extensions import db

    assert client.get("/healthz").get_json()["beat"] == {
        "problem": "beat has not run yet: no scheduled job or sweep is sent"
    }
    with time_machine.travel(NOW, tick=False):
        record(db.new_session, BEAT, "beat@here")
        assert client.get("/healthz").get_json()["beat"] == {"problem": None}
    with time_machine.travel(NOW + timedelta(seconds=89), tick=False):
        assert client.get("/healthz").get_json()["beat"] == {"problem": None}  # 3 × 30 s allowed
    with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
        record(db.new_session, WORKER, "celery@here")
        response = client.get("/healthz")
    body = response.get_json()
    assert response.status_code == 200 and body["workers"] == {"alive": 1, "problem": None}
    assert body["beat_heartbeat_age_seconds"] == 300.0
    assert body["beat"]["problem"] == (
        "beat has sent nothing for 5 minutes: scheduled jobs and sweeps are not running"
    )


def test_cleanup_list_shows_the_heartbeat_and_its_ages(app, run_cli):
    from lifecycle.cleanup.heartbeat import WORKER, record
    from lifecycle.extensions import db

    record(db.new_session, WORKER, "celery@here")
    listing = json.loads(run_cli("cleanup", "--list", "--json"))["heartbeat"]
    assert listing["every_seconds"] == 30.0 and 0 <= listing["worker_heartbeat_age_seconds"] < 600
    assert listing["beat_heartbeat_age_seconds"] is None and listing["workers"]["alive"] == 1
    assert listing["beat"]["problem"].startswith("beat has not run yet")
    text_output = run_cli("cleanup", "--list")
    assert "heartbeat              every 30s" in text_output
    assert (
        "newest worker heartbeat " in text_output
        and ", beat never; PROBLEM: beat has not run yet" in text_output
    )


def test_beat_starts_without_var_and_records_its_heartbeat(tmp_path):
    """A fresh checkout: VAR_DIR does not exist, the broker is Redis (production set-up)."""
    missing = _services_missing()
    if missing:
        pytest.skip(f"Redis/PostgreSQL not reachable: {missing}")
    var_dir = tmp_path / "var-not-created-yet"
    database = f"sqlite:///{tmp_path / 'db' / 'lifecycle.sqlite3'}"
    migrate.upgrade(database)
    env = {
        **os.environ,
        "VAR_DIR": str(var_dir),
        "DATABASE_URL": database,
        "BROKER_URL": REDIS_URL,
        "HEARTBEAT_INTERVAL_SECONDS": "0.5",
    }
    log = tmp_path / "beat.log"
    with log.open("wb") as output:
        beat = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "beat"], cwd=tmp_path, env=env,
                                stdout=output, stderr=subprocess.STDOUT)  # fmt: skip
    engine = create_engine(database)
    try:

        def beat_heartbeat() -> bool:
            assert beat.poll() is None, log.read_text()
            with engine.connect() as connection:
                return bool(
                    connection.execute(text("SELECT count(*) FROM heartbeats WHERE kind='beat'")).scalar()
                )

        wait_for(beat_heartbeat, timeout=60, interval=0.2)
        time.sleep(3)  # still scheduling a few seconds later
        assert beat.poll() is None and var_dir.is_dir(), log.read_text()
    finally:
        beat.terminate()
        try:
            beat.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a broken beat may ignore SIGTERM
            beat.kill()
            beat.wait(timeout=30)
        engine.dispose()
        redis.Redis.from_url(REDIS_URL).flushdb()


def test_cleanup_cli_dry_run_lists_then_a_run_acts_and_list_shows_it(app, run_cli):
    with app.app_context():
        add_shipment("OLD-DELIVERED", status="delivered", last_event_at=NOW - timedelta(days=3))
    dry = json.loads(run_cli("cleanup", "safety-net", "--dry-run", "--json"))
    assert dry["would_stopped"] == 1 and dry["shipments"][0]["number"] == "OLD-DELIVERED"
    assert shipment("OLD-DELIVERED").tracking == "tracking"
    text_output = run_cli("cleanup", "safety-net")
    assert "stopped: 1" in text_output and shipment("OLD-DELIVERED").tracking == "stopping"
    listing = json.loads(run_cli("cleanup", "--list", "--json"))
    jobs = {item["job"]: item for item in listing["jobs"]}
    assert jobs["safety-net"]["every_seconds"] == 3600.0
    assert jobs["safety-net"]["last_run"]["counts"]["stopped"] == 1
    assert jobs["retention"]["last_run"] is None
    assert listing["replay"]["complete"] is True
    assert "safety-net" in run_cli("cleanup", "--list") and len(runs("safety-net")) == 2
