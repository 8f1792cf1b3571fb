"""CargoAi callbacks: authenticate as configured, store the raw body durably, answer."""

from __future__ import annotations

from flask import Blueprint, request

from lifecycle import runtime
from lifecycle.metrics import WEBHOOKS
from lifecycle.providers import cargoai
from lifecycle.providers.validation import load_json
from lifecycle.web.webhooks import MalformedJson, read_body, refuse, store

bp = Blueprint("webhooks_cargoai", __name__, url_prefix="/webhooks")


_STORED = WEBHOOKS.labels(provider=cargoai.PROVIDER, result="stored")


def _refuse(status: int, error: str, message: str):  # type: ignore[no-untyped-def]
    return refuse(cargoai.PROVIDER, status, error, message)


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
    raw = read_body(cargoai.PROVIDER)
    if not isinstance(raw, bytes):
        return raw
    mode = runtime.settings().cargoai_callback_auth
    if not cargoai.authorised(mode, raw, request.headers, _secrets()):
        return _refuse(401, "unauthorised", f"callback authentication ({mode}) failed")
    try:
        payload = load_json(raw, MalformedJson)
    except MalformedJson as exc:
        return _refuse(400, "malformed_json", str(exc))
    try:
        cargoai.check_envelope(payload)
    except cargoai.CallbackError as exc:
        return _refuse(400, "not_a_cargoai_callback", str(exc))
    return store(cargoai.PROVIDER, raw, _STORED)
