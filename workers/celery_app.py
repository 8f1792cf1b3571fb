"""Worker and beat entry point: `celery -A workers.celery_app worker`."""

from celery.signals import worker_init, worker_process_init

from lifecycle import create_app
from lifecycle.extensions import db

flask_app = create_app()
celery_app = flask_app.extensions["celery"]


@worker_process_init.connect
def _fresh_connections_per_child(**_kwargs: object) -> None:
    db.dispose_after_fork()


@worker_init.connect
def _metrics_port(**_kwargs: object) -> None:
    # A worker machine without the web app has no /metrics of its own: serve its counters here.
    settings = flask_app.config["SETTINGS"]
    if settings.metrics_port:
        from lifecycle.observability.multiproc import serve_worker_metrics

        serve_worker_metrics(settings.metrics_port, settings.metrics_root)
