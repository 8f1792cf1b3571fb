"""/metrics: counters where things happen, gauges read from the database at scrape time, and
multiprocess files that add up across processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from lifecycle import jobs
from lifecycle.cleanup.heartbeat import WORKER
from lifecycle.cleanup.heartbeat import record as record_heartbeat
from lifecycle.extensions import db
from lifecycle.observability import multiproc
from tests.helpers import delivered, in_transit, post_push, wait_for
from tests.outbound_support import FAST_RETRIES, EventReceiver, add_endpoint, deliveries, drain, send

ROOT = Path(__file__).resolve().parent.parent


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:  # type: ignore[no-untyped-def]
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:  # type: ignore[no-untyped-def]
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_webhooks_inbox_lag_events_and_drain_batches_are_counted(app, client):
    before = scrape(client)
    assert value(before, "lifecycle_inbox_pending") == 0
    assert value(before, "lifecycle_database_up") == 1
    for number in ("MX1", "MX2", "MX3"):
        assert post_push(client, in_transit(number)).status_code == 200
    assert post_push(client, delivered("MX1"), key="wrong").status_code == 401
    assert client.post("/webhooks/17track", data=b"{", headers={"sign": "x"}).status_code == 401

    lagging = scrape(client)
    stored = ("lifecycle_webhooks_total", {"provider": "17track", "result": "stored"})
    refused = ("lifecycle_webhooks_total", {"provider": "17track", "result": "bad_signature"})
    assert value(lagging, stored[0], **stored[1]) - value(before, stored[0], **stored[1]) == 3
    assert value(lagging, refused[0], **refused[1]) - value(before, refused[0], **refused[1]) == 2
    assert value(lagging, "lifecycle_inbox_pending") == 3
    assert value(lagging, "lifecycle_inbox_oldest_pending_age_seconds") >= 0

    with app.app_context():
        jobs.drain_inbox()
    after = scrape(client)
    assert value(after, "lifecycle_inbox_pending") == 0
    applied = value(after, "lifecycle_events_applied_total", outcome="applied")
    assert applied - value(before, "lifecycle_events_applied_total", outcome="applied") == 3
    batches = value(after, "lifecycle_drain_batch_seconds_count")
    assert batches - value(before, "lifecycle_drain_batch_seconds_count") >= 1


def test_outbox_quota_jobs_and_heartbeats_come_from_the_database(app, client):
    for number in ("QX1", "QX2"):
        post_push(client, delivered(number))
    with app.app_context():
        jobs.drain_inbox()
        record_heartbeat(db.new_session, WORKER, "celery@test")
        jobs.cleanup("retention")
    samples = scrape(client)
    # Two delivered shipments: two stoptracks wait in the outbox (no provider is reachable here).
    assert value(samples, "lifecycle_operations_queued", provider="17track", kind="stoptrack") == 2
    assert value(samples, "lifecycle_heartbeat_age_seconds", kind="worker") < 60
    assert value(samples, "lifecycle_workers_alive") == 1
    assert value(samples, "lifecycle_job_last_success_timestamp_seconds", job="retention") > 1.7e9
    assert value(samples, "lifecycle_job_runs_total", job="retention", result="ok") >= 1
    # The free plan: 100 a month, nothing charged yet (adopted pushes cost nothing).
    free = {"provider": "17track", "unit": "quota", "bucket": "monthly_free"}
    assert value(samples, "lifecycle_quota_used", **free) == 0
    assert value(samples, "lifecycle_quota_remaining", **free) == 100


def test_provider_calls_latency_and_operations_sent_are_counted(sim_app, sim):
    client = sim_app.test_client()
    post_push(client, delivered("SX1"))
    before = scrape(client)
    with sim_app.app_context():
        jobs.drain_inbox()
        jobs.flush_operations()
    after = scrape(client)
    sent = ("lifecycle_operations_total", {"provider": "17track", "kind": "stoptrack", "result": "sent"})
    assert value(after, sent[0], **sent[1]) - value(before, sent[0], **sent[1]) == 1
    calls = ("lifecycle_provider_call_seconds_count", {"provider": "17track", "endpoint": "stoptrack"})
    assert value(after, calls[0], **calls[1]) - value(before, calls[0], **calls[1]) == 1


def test_throttling_retries_and_give_ups_are_counted_under_provider_faults(settings_factory, sim):
    from sqlalchemy import update

    from lifecycle import create_app
    from lifecycle.db import utcnow
    from lifecycle.operations.models import Operation

    app = create_app(settings_factory(seventeentrack_api_url=sim.url, operation_max_attempts=2))
    client = app.test_client()
    post_push(client, delivered("FX1"))
    with app.app_context():
        jobs.drain_inbox()
    before = scrape(client)
    sim.fail_next(429, 503)  # the stoptrack's first attempt is throttled, its second (and last) fails
    with app.app_context():
        jobs.flush_operations()
        with db.new_session() as session, session.begin():  # its backoff over at once
            session.execute(update(Operation).values(next_attempt_at=utcnow()))
        jobs.flush_operations()
    after = scrape(client)
    stoptrack = {"provider": "17track", "kind": "stoptrack"}

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert [call.get("fault") for call in sim.calls("stoptrack")] == [429, 503]
    assert grew("lifecycle_provider_throttled_total", provider="17track") == 1
    assert grew("lifecycle_operations_total", **stoptrack, result="retried") == 1
    assert grew("lifecycle_operations_total", **stoptrack, result="failed") == 1
    assert grew("lifecycle_operations_total", **stoptrack, result="sent") == 0
    assert value(after, "lifecycle_operations_failed", **stoptrack) == 1
    db.engine.dispose()  # type: ignore[union-attr]


def _backdate_deliveries(app, *ages_seconds: float) -> None:  # type: ignore[no-untyped-def]
    """Set each delivery's created_at (in id order) to that many seconds before now."""
    from datetime import timedelta

    from sqlalchemy import update

    from lifecycle.db import utcnow
    from lifecycle.outbound.models import Delivery

    ids, now = [d.id for d in deliveries(app)], utcnow()
    with app.app_context(), db.new_session() as session, session.begin():
        for delivery_id, age in zip(ids, ages_seconds, strict=True):
            created = now - timedelta(seconds=age)
            session.execute(update(Delivery).where(Delivery.id == delivery_id).values(created_at=created))


def test_outbound_deliveries_pending_age_and_disabled_endpoints_are_exported(settings_factory):
    from lifecycle import create_app
    from lifecycle.outbound import endpoints

    app = create_app(settings_factory(**(FAST_RETRIES | {"outbound_max_attempts": 2})))
    client = app.test_client()
    counted = "lifecycle_outbound_deliveries_total"
    with EventReceiver() as receiver:
        endpoint_id, _ = add_endpoint(app, receiver.url)
        before = scrape(client)
        assert value(before, "lifecycle_outbound_pending") == 0
        post_push(client, in_transit("OB1", 10))
        post_push(client, delivered("OB2", 30))
        drain(app)
        # Created 300 s and 100 s ago (the endpoint is enabled): the gauge is the older one's age.
        _backdate_deliveries(app, 300, 100)
        waiting = scrape(client)
        assert value(waiting, "lifecycle_outbound_pending") == 2
        assert 300 <= value(waiting, "lifecycle_outbound_oldest_pending_age_seconds") < 900
        receiver.refuse = b'"number":"OB1"'  # OB1 fails twice and is given up; OB2 goes through
        wait_for(lambda: send(app) and all(d.status != "pending" for d in deliveries(app)), timeout=30,
                 interval=0.05)  # fmt: skip
    with app.app_context(), db.new_session() as session, session.begin():
        endpoints.set_enabled(session, endpoint_id, False)
    after = scrape(client)

    def grew(result: str) -> float:
        return value(after, counted, result=result) - value(before, counted, result=result)

    assert (grew("delivered"), grew("retrying"), grew("given_up")) == (1, 1, 1)
    assert value(after, "lifecycle_outbound_pending") == 0
    assert value(after, "lifecycle_outbound_oldest_pending_age_seconds") == 0
    assert value(after, "lifecycle_outbound_given_up") == 1
    assert value(after, "lifecycle_outbound_endpoints_disabled") == 1
    db.engine.dispose()  # type: ignore[union-attr]


WRITER = textwrap.dedent(
    """
    import sys
    from lifecycle.metrics import EVENTS_APPLIED, WEBHOOKS
    for _ in range(int(sys.argv[1])):
        WEBHOOKS.labels(provider="17track", result="stored").inc()
    EVENTS_APPLIED.labels(outcome="applied").inc(int(sys.argv[1]))
    """
)


def _write_in_a_process(folder: Path, amount: int) -> None:
    env = {**os.environ, multiproc.ENV: str(folder)}
    subprocess.run([sys.executable, "-c", WRITER, str(amount)], cwd=ROOT, env=env, check=True, timeout=60)


def test_counters_add_up_across_processes_and_commands(tmp_path, monkeypatch):
    monkeypatch.setenv(multiproc.ENV, "restored after the test")
    root = tmp_path / "metrics"
    web = multiproc.prepare("web", root, pid=os.getpid())
    # What two gunicorn workers of `serve` and a prefork child of another command leave behind.
    _write_in_a_process(web, 3)
    _write_in_a_process(web, 4)
    worker = root / f"worker-{os.getpid()}"
    worker.mkdir()
    _write_in_a_process(worker, 5)
    merged = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in multiproc.MachineCollector(root).collect()
        for sample in family.samples  # type: ignore[attr-defined]
    }
    stored = ("lifecycle_webhooks_total", (("provider", "17track"), ("result", "stored")))
    assert merged[stored] == 12
    assert merged[("lifecycle_events_applied_total", (("outcome", "applied"),))] == 12


def test_prepare_empties_its_folder_and_removes_dead_commands_folders(tmp_path, monkeypatch):
    monkeypatch.setenv(multiproc.ENV, "restored after the test")
    root = tmp_path / "metrics"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    stale = root / f"worker-{int(dead.stdout)}"
    stale.mkdir(parents=True)
    (stale / "counter_1.db").write_bytes(b"x")
    alive = root / f"web-{os.getppid()}"
    alive.mkdir()
    mine = multiproc.prepare("serve", root, pid=os.getpid())
    (mine / "counter_2.db").write_bytes(b"x")
    assert multiproc.prepare("serve", root, pid=os.getpid()) == mine
    assert not stale.exists() and alive.exists()
    assert list(mine.iterdir()) == []
    assert os.environ[multiproc.ENV] == str(mine)
