"""The shipment lifecycle manager: `create_app` is the one app factory."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from config.settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app (and its Celery app) from settings, the environment by default."""
    # Imported here, not at module level: `manage.py --help` and read commands import this package
    # and should not pay for Flask, Celery and the providers.
    from flask import Flask

    from config.settings import get_settings
    from lifecycle import runtime
    from lifecycle.admin import init_app as init_admin
    from lifecycle.celery import celery_init_app
    from lifecycle.extensions import db
    from lifecycle.web import register_blueprints

    settings = settings or get_settings()
    _configure_logging(settings)
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY=settings.secret_key.get_secret_value(),
        DATABASE_URL=settings.database_url,
        MAX_CONTENT_LENGTH=settings.webhook_max_bytes,
        SETTINGS=settings,
    )
    db.init_app(app)
    celery_init_app(app, settings)
    runtime.init_app(app)
    register_blueprints(app)
    init_admin(app)
    return app


def _configure_logging(settings: Settings) -> None:
    # Structured lines with request / task ids, secrets masked (lifecycle/observability/logs.py).
    from lifecycle.observability.logs import configure

    configure(settings)
