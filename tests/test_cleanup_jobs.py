"""Safety-net stop and stale shipments: what they act on, dry runs, repeats, the run row, the lock."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import time_machine

from lifecycle.cleanup.schedule import JOBS
from lifecycle.locks import singleton
from tests.cleanup_helpers import NOW, add_shipment, operations, run, runs, shipment
from tests.test_status_progress import on_a_terminal

ROOT = Path(__file__).resolve().parent.parent


def test_safety_net_stops_ended_shipments_still_tracked(app):
    with app.app_context():
        add_shipment("OLD-DELIVERED", status="delivered", last_event_at=NOW - timedelta(hours=30))
        add_shipment("OLD-RETURNED", status="returned", last_event_at=NOW - timedelta(hours=30))
        add_shipment("FRESH-DELIVERED", status="delivered", last_event_at=NOW - timedelta(hours=2))
        add_shipment("ALREADY-STOPPING", status="delivered", tracking="stopping",
                     last_event_at=NOW - timedelta(hours=30))  # fmt: skip
        add_shipment("IN-TRANSIT", last_event_at=NOW - timedelta(hours=30))
    with time_machine.travel(NOW, tick=False):
        counts = run(app, "safety-net", safety_net_after_hours=24)
        again = run(app, "safety-net", safety_net_after_hours=24)
    assert counts["stopped"] == 2
    assert sorted(op.number for op in operations("stoptrack")) == ["OLD-DELIVERED", "OLD-RETURNED"]
    assert shipment("OLD-DELIVERED").tracking == "stopping"
    assert shipment("FRESH-DELIVERED").tracking == "tracking"
    assert again.get("stopped", 0) == 0 and len(operations("stoptrack")) == 2


def test_safety_net_dry_run_lists_and_changes_nothing(app):
    with app.app_context():
        add_shipment("OLD-DELIVERED", status="delivered", last_event_at=NOW - timedelta(hours=30))
    with time_machine.travel(NOW, tick=False):
        counts = run(app, "safety-net", dry_run=True)
    assert counts["would_stopped"] == 1
    assert [item["number"] for item in counts["shipments"]] == ["OLD-DELIVERED"]
    assert operations() == [] and shipment("OLD-DELIVERED").tracking == "tracking"
    (recorded,) = runs("safety-net")
    assert recorded.dry_run and recorded.finished_at is not None and recorded.error is None
    assert recorded.counts["would_stopped"] == 1


def test_safety_net_works_in_batches_across_many_shipments(app):
    with app.app_context():
        for i in range(7):
            add_shipment(f"D{i}", status="delivered", last_event_at=NOW - timedelta(days=2))
    with time_machine.travel(NOW, tick=False):
        counts = run(app, "safety-net", cleanup_batch_size=3)
    assert counts["stopped"] == 7 and len(operations("stoptrack")) == 7


def test_stale_reports_by_default_and_stops_when_asked(app):
    with app.app_context():
        add_shipment("QUIET", last_event_at=NOW - timedelta(days=25))
        add_shipment("NOT-FOUND", status="not_found", registered_at=NOW - timedelta(days=8))
        add_shipment("RECENT-NOT-FOUND", status="not_found", registered_at=NOW - timedelta(days=2))
        add_shipment("LIVELY", last_event_at=NOW - timedelta(days=1))
    with time_machine.travel(NOW, tick=False):
        report = run(app, "stale")
        assert report["action"] == "report" and (report["no_event"], report["not_found"]) == (1, 1)
        assert {s["number"]: s["reason"] for s in report["shipments"]} == {
            "QUIET": "no_event", "NOT-FOUND": "not_found",
        }  # fmt: skip
        assert operations() == []
        dry = run(app, "stale", dry_run=True, stale_action="stop")
        assert dry["no_event"] == 1 and "stopped" not in dry and operations() == []
        stopped = run(app, "stale", stale_action="stop")
    assert stopped["stopped"] == 2
    assert sorted(op.number for op in operations("stoptrack")) == ["NOT-FOUND", "QUIET"]
    assert shipment("LIVELY").tracking == "tracking"


def test_stale_covers_every_provider_and_stops_each_shipment_the_way_its_adapter_does(app):
    quiet = NOW - timedelta(days=25)
    with app.app_context():
        add_shipment("QUIET-17", last_event_at=quiet)
        add_shipment("17612345675", provider="cargoai", carrier=176, tracking_mode="push", subscriptions=1,
                     last_event_at=quiet)  # fmt: skip
        add_shipment(
            "17612345686", provider="cargoai", carrier=176, tracking_mode="pull", last_event_at=quiet
        )
        add_shipment("PARCEL-9", provider="generic", last_event_at=quiet)
    with time_machine.travel(NOW, tick=False):
        report = run(app, "stale")
        assert report["by_provider"] == {"17track": 1, "cargoai": 2, "generic": 1} and operations() == []
        stopped = run(app, "stale", stale_action="stop")
    assert (stopped["stopped"], stopped["operations_queued"]) == (4, 2)
    assert [(op.kind, op.number) for op in operations()] == [
        ("stoptrack", "QUIET-17"), ("unsubscribe", "17612345675"),
    ]  # fmt: skip
    assert shipment("17612345675").tracking == "stopping"  # until CargoAi confirms the unsubscribe
    assert shipment("17612345686").tracking == "stopped" and shipment("PARCEL-9").tracking == "stopped"


def test_a_job_held_elsewhere_is_skipped_and_not_recorded(app, settings):
    lease = 60
    with singleton("job-safety-net", settings.shared_limiter_url, settings.var_dir / "locks", lease) as mine:
        assert mine
        counts = run(app, "safety-net")
    assert counts == {"skipped": "another process is running this job"}
    assert runs("safety-net") == []


def test_a_failing_job_records_its_error_and_partial_counts(app, monkeypatch):
    from lifecycle.cleanup import registry

    def half_done(context):  # type: ignore[no-untyped-def]
        context.add("stopped", 3)
        raise RuntimeError("provider exploded")

    monkeypatch.setitem(registry.FUNCTIONS, "safety-net", half_done)
    try:
        run(app, "safety-net")
    except RuntimeError:
        pass
    (recorded,) = runs("safety-net")
    assert recorded.error == "RuntimeError: provider exploded" and recorded.counts == {"stopped": 3}


def test_every_job_is_scheduled_by_beat(app):
    import workers.tasks  # noqa: F401  (registers the tasks, as the worker's `include` does)

    schedule = app.extensions["celery"].conf.beat_schedule
    scheduled = {entry["task"] for entry in schedule.values()}
    assert {job.task for job in JOBS} | {"lifecycle.maintenance.heartbeat"} <= scheduled
    assert set(app.extensions["celery"].tasks) >= {job.task for job in JOBS}


def test_the_celery_task_runs_the_job_and_records_it(app):
    from workers import tasks

    with app.app_context():
        add_shipment("OLD-DELIVERED", status="delivered", last_event_at=NOW - timedelta(days=3))
        tasks.safety_net.apply().get()
    assert shipment("OLD-DELIVERED").tracking == "stopping"
    assert runs("safety-net")[0].counts["stopped"] == 1


def test_two_runs_at_once_do_the_work_once(app):
    """Beat firing twice, or two machines: one run holds the lock, the other is skipped or finds nothing."""
    import threading

    from lifecycle.db import utcnow

    with app.app_context():
        for i in range(40):
            add_shipment(f"D{i:02}", status="delivered", last_event_at=utcnow() - timedelta(days=2))
    start = threading.Barrier(2)
    results: list[dict] = []

    def one_run() -> None:
        start.wait()
        results.append(run(app, "safety-net", cleanup_batch_size=5))

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sum(result.get("stopped", 0) for result in results) == 40
    assert len(operations("stoptrack")) == 40 and len({op.number for op in operations()}) == 40


def test_cleanup_of_every_job_reports_each_failure_in_a_line_and_runs_the_others(app, cli_env, monkeypatch):
    from click.testing import CliRunner

    from lifecycle.cleanup import registry
    from lifecycle.cli import cli

    def broken(context):  # type: ignore[no-untyped-def]
        raise RuntimeError("provider exploded\nwith a traceback-like second line")

    def looks(context):  # type: ignore[no-untyped-def]
        context.add("looked", 1)

    monkeypatch.setitem(registry.FUNCTIONS, "safety-net", broken)  # the first job
    monkeypatch.setitem(registry.FUNCTIONS, "retention", broken)
    monkeypatch.setitem(registry.FUNCTIONS, "reconcile", looks)  # no 17TRACK to ask here
    result = CliRunner().invoke(cli, ["cleanup"])
    assert result.exit_code == 1, result.output
    assert "safety-net: FAILED RuntimeError: provider exploded\n" in result.stdout
    assert "retention: FAILED RuntimeError: provider exploded\n" in result.stdout
    assert "reconcile\n  looked: 1\n" in result.stdout and "traceback-like" not in result.stdout
    assert "error: 2 of 7 jobs failed: safety-net, retention" in result.stderr
    assert all(runs(spec.name) for spec in JOBS)  # every job ran, and each run is recorded
    assert runs("safety-net")[0].error.startswith("RuntimeError: provider exploded")
    as_json = CliRunner().invoke(cli, ["cleanup", "--json"])
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    assert (
        report["retention"] == {"error": "RuntimeError: provider exploded"} and report["reconcile"]["looked"]
    )


def test_a_job_tells_its_progress_in_rows_after_every_batch(app):
    with app.app_context():
        for i in range(7):
            add_shipment(f"D{i}", status="delivered", last_event_at=NOW - timedelta(days=2))
    told: list[tuple[int, int]] = []
    with time_machine.travel(NOW, tick=False):
        run(app, "safety-net", cleanup_batch_size=3, progress=lambda done, total: told.append((done, total)))
    assert told == [(3, 7), (6, 7), (7, 7)]


def test_one_job_shows_a_bar_of_rows_on_a_terminal_and_none_with_json(embedded):
    from sqlalchemy import insert

    from lifecycle.db import make_engine
    from lifecycle.shipments.models import Shipment

    engine = make_engine(f"sqlite:///{Path(embedded['VAR_DIR']) / 'lifecycle.sqlite3'}")
    rows = [{"provider": "17track", "number": f"BAR{i:05d}", "carrier": 3011, "status": "delivered",
             "tracking": "tracking", "registered_at": NOW - timedelta(days=9),
             "last_event_at": NOW - timedelta(days=3)} for i in range(1200)]  # fmt: skip
    with engine.begin() as connection:
        connection.execute(insert(Shipment), rows)
    engine.dispose()
    out, err = on_a_terminal(["cleanup", "safety-net", "--dry-run"], embedded)
    assert "cleanup safety-net" in err and "1200/1200" in err and "rows/s" in err
    assert "would_stopped: 1200" in out
    out, err = on_a_terminal(["cleanup", "safety-net", "--dry-run", "--json"], embedded)
    assert "%" not in err and json.loads(out)["would_stopped"] == 1200


def test_cleanup_of_every_job_reports_a_failing_one_and_runs_the_rest_as_a_user_runs_it(embedded):
    # 17TRACK unreachable: the reconcile job fails, the six others still run, the command exits 1.
    env = embedded | {"SEVENTEENTRACK_API_URL": "http://127.0.0.1:9"}
    command = [sys.executable, "manage.py", "cleanup"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    assert "reconcile: FAILED ProviderError: gettracklist: ConnectionError" in result.stdout
    ran = [line for line in result.stdout.splitlines() if line and not line.startswith((" ", "reconcile"))]
    assert ran == [job.name for job in JOBS if job.name != "reconcile"]
    assert result.stderr.strip().endswith(f"error: 1 of {len(JOBS)} jobs failed: reconcile")
    assert "Traceback" not in result.stderr
