"""Worker and beat entry point: `celery -A workers.celery_app worker`."""

from celery.signals import worker_process_init

from lifecycle import create_app
from lifecycle.extensions import db

flask_app = create_app()
celery_app = flask_app.extensions["celery"]


@worker_process_init.connect
def _fresh_connections_per_child(**_kwargs: object) -> None:
    db.dispose_after_fork()
