"""Celery wired to the Flask app: every task runs inside the app context."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from flask import Flask, has_app_context
from kombu import Queue

from config.settings import Settings
from lifecycle.broker import TRANSPORT
from lifecycle.cleanup.schedule import beat_entries

QUEUE = "lifecycle"
# Inbox draining, provider calls and housekeeping wait in separate queues, so a flood of drain
# signals never delays a sweep, and a long rate-limited flush never hides work from the drainers.
QUEUES = (QUEUE, "inbox", "provider")
ROUTES = {"lifecycle.inbox.drain": {"queue": "inbox"}, "lifecycle.operations.flush": {"queue": "provider"}}


def celery_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "task_ignore_result": True,
        "result_backend": None,
        "task_serializer": "json",
        "accept_content": ["json"],
        # Tasks are idempotent (they drain tables), so a crash mid-task may simply re-run them.
        "task_acks_late": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": QUEUE,
        "task_queues": [Queue(name) for name in QUEUES],
        "task_routes": ROUTES,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "beat_schedule": {
            "sweep": {"task": "lifecycle.maintenance.sweep", "schedule": settings.sweep_interval_seconds},
            "sync-silent": {
                "task": "lifecycle.shipments.sync_silent",
                "schedule": settings.sync_interval_seconds,
            },
            "cargoai-poll": {"task": "lifecycle.cargoai.poll", "schedule": 3600.0},
            # Outbound events: retries fall due here (and deliveries a lost signal left behind).
            "outbound-send": {"task": "lifecycle.outbound.send", "schedule": settings.sweep_interval_seconds},
            # The scheduled jobs (lifecycle/cleanup/schedule.py), CargoAi renewal among them.
            **beat_entries(settings),
        },
        "beat_schedule_filename": str(settings.var_dir / "celerybeat-schedule"),
        # Schedules only while it holds the leader lease: a second beat stands by (lifecycle/beat.py).
        "beat_scheduler": "lifecycle.beat:LeaderScheduler",
        "include": ["workers.tasks"],
    }
    # Beat keeps its schedule state there: a fresh checkout (no var/) must not stop beat.
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    if settings.is_embedded_broker:
        folder = settings.broker_dir / "queue"
        folder.mkdir(parents=True, exist_ok=True)
        # kombu's filesystem transport with atomic writes and claims (lifecycle/broker.py).
        config["broker_transport"] = TRANSPORT
        # The folder is the whole address; naming a host keeps kombu from warning on every command.
        config["broker_url"] = "filesystem://localhost//"
        config["broker_transport_options"] = {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            # Broadcast (pidbox) messages; kombu's default is ./control in the working directory.
            "control_folder": str(settings.broker_dir / "control"),
            "store_processed": False,
            # The filesystem transport polls; a short interval keeps embedded latency low.
            "polling_interval": 0.25,
        }
    else:
        # Fail fast when Redis is down: the webhook path must never wait on the broker.
        config["broker_transport_options"] = {"socket_connect_timeout": 2, "socket_timeout": 5}
    return config


def celery_init_app(app: Flask, settings: Settings) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            # Reuse a context that is already active (in-thread test workers, nested calls).
            if has_app_context():
                return self.run(*args, **kwargs)
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.import_name, task_cls=FlaskTask)
    celery_app.conf.update(celery_config(settings))
    celery_app.lifecycle_settings = settings  # type: ignore[attr-defined]
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    _record_beat_heartbeats()
    return celery_app


def _record_beat_heartbeats() -> None:
    from lifecycle.cleanup.heartbeat import connect_beat_signals
    from lifecycle.extensions import db

    # A forked embedded beat must not share the parent's pooled connections.
    connect_beat_signals(db.new_session, on_beat_start=db.dispose_after_fork)


def send_signal(app: Flask, task_name: str, countdown: float | None = None) -> None:
    """Ask the workers to run a task now (or in `countdown` seconds); raises if the broker cannot
    be reached. A worker keeps a task that is not due yet aside, not in a pool process."""
    app.extensions["celery"].send_task(task_name, retry=False, countdown=countdown)
