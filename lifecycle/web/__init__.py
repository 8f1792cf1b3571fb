"""HTTP layer: thin views that verify, store and answer."""

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException


def register_blueprints(app: Flask) -> None:
    from lifecycle.web import api, health, webhooks

    # Webhook POSTs are answered in front of Flask's own stack (lifecycle/web/webhooks.py).
    app.wsgi_app = webhooks.WebhookIntake(app, app.wsgi_app)  # type: ignore[method-assign]
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)

    @app.errorhandler(HTTPException)
    def _json_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        # Machines call every route here, so errors are JSON with a readable reason.
        return jsonify(error=exc.name.lower().replace(" ", "_"), message=exc.description), exc.code
