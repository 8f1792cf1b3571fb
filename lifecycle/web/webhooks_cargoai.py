"""CargoAi callbacks: authenticate as configured, store the raw body durably, answer."""

from __future__ import annotations

import json

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from lifecycle import runtime
from lifecycle.metrics import WEBHOOKS
from lifecycle.providers import cargoai

bp = Blueprint("webhooks_cargoai", __name__, url_prefix="/webhooks")


def _refuse(status: int, error: str, message: str):  # type: ignore[no-untyped-def]
    WEBHOOKS.labels(provider=cargoai.PROVIDER, result=error).inc()
    return jsonify(error=error, message=message), status


def _secrets() -> dict[str, str]:
    config = runtime.settings()
    return {
        "api_key": config.cargoai_api_key.get_secret_value(),
        "token": config.cargoai_callback_token.get_secret_value(),
        "user": config.cargoai_callback_user,
        "password": config.cargoai_callback_password.get_secret_value(),
    }


@bp.post("/cargoai")
def cargoai_callback():  # type: ignore[no-untyped-def]
    """Receive a CargoAi tracking callback: 200 once its raw body is committed to the inbox."""
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge:
        return _refuse(413, "too_large", f"body exceeds {current_app.config['MAX_CONTENT_LENGTH']} bytes")
    mode = runtime.settings().cargoai_callback_auth
    if not cargoai.authorised(mode, raw, request.headers, _secrets()):
        return _refuse(401, "unauthorised", f"callback authentication ({mode}) failed")
    try:
        cargoai.check_envelope(json.loads(raw))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _refuse(400, "malformed_json", str(exc))
    except cargoai.CallbackError as exc:
        return _refuse(400, "not_a_cargoai_callback", str(exc))
    try:
        inbox_id = runtime.inbox_writer().write(cargoai.PROVIDER, raw)
    except Exception:
        current_app.logger.exception("could not store a CargoAi callback")
        return _refuse(503, "storage_unavailable", "could not store the event; retry later")
    WEBHOOKS.labels(provider=cargoai.PROVIDER, result="stored").inc()
    return jsonify(status="stored", inbox_id=inbox_id), 200
