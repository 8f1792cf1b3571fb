"""Liveness and metrics."""

from __future__ import annotations

import os

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from sqlalchemy import text
from sqlalchemy.orm import Session

from lifecycle import runtime
from lifecycle.accounting.ledger import Account
from lifecycle.accounting.service import in_force
from lifecycle.extensions import db
from lifecycle.health import broker_status, inbox_gauges, worker_gauges
from lifecycle.observability import multiproc
from lifecycle.observability.collector import DatabaseCollector

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
    """Process counters (every process on this machine in multiprocess mode) and database gauges."""
    config = runtime.settings()
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(multiproc.ENV):
        registry.register(multiproc.MachineCollector(config.metrics_root))  # type: ignore[arg-type]
    else:
        registry.register(REGISTRY)  # type: ignore[arg-type]
    registry.register(DatabaseCollector(_reader, config, _accounts))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def _reader() -> Session:
    """A session that never takes SQLite's write lock: a scrape must not hold up the workers."""
    return db.read_session()


def _accounts(session: Session) -> dict[str, Account]:
    """The accounts with the plans set by `manage.py plan --set`, read on the scrape's session."""
    return {provider: in_force(session, account) for provider, account in runtime.accounts().items()}
