"""Liveness and metrics."""

from __future__ import annotations

import os

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from sqlalchemy import text

from lifecycle import runtime
from lifecycle.extensions import db
from lifecycle.health import broker_status, inbox_gauges, worker_gauges

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    """200 when the database answers; the broker's state is reported (webhooks work without it)."""
    checks: dict[str, object] = {}
    try:
        with db.engine.connect() as connection:  # type: ignore[union-attr]
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {exc.__class__.__name__}"
    checks["broker"] = broker_status(current_app.extensions["celery"], runtime.settings())
    if checks["database"] == "ok":
        checks.update(inbox_gauges())
        checks.update(worker_gauges(runtime.settings()))
    healthy = checks["database"] == "ok"
    status = "ok" if healthy and checks["broker"] == "ok" else ("degraded" if healthy else "down")
    return jsonify(status=status, **checks), (200 if healthy else 503)


@bp.get("/metrics")
def metrics() -> Response:
    registry = None
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    payload = generate_latest(registry) if registry else generate_latest()
    return Response(payload, mimetype=CONTENT_TYPE_LATEST)
