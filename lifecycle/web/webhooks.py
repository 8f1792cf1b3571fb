"""Provider webhooks: verify, store the raw body durably, answer. Nothing else happens here."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from lifecycle import runtime
from lifecycle.metrics import WEBHOOKS
from lifecycle.providers import seventeentrack as st
from lifecycle.providers.validation import load_json


class MalformedJson(ValueError):
    """The body is not JSON this service can read (syntax, encoding, huge integers, nesting)."""


bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
log = logging.getLogger(__name__)

# Every accepted push goes through here: the counter child is bound once, not looked up per request.
_STORED = WEBHOOKS.labels(provider=st.PROVIDER, result="stored")


def refuse(provider: str, status: int, error: str, message: str):  # type: ignore[no-untyped-def]
    WEBHOOKS.labels(provider=provider, result=error).inc()
    # The reason only: neither the body nor the message (which may quote it) is logged.
    log.info("webhook refused", extra={"provider": provider, "reason": error, "status": status})
    return jsonify(error=error, message=message), status


def _refuse(status: int, error: str, message: str):  # type: ignore[no-untyped-def]
    return refuse(st.PROVIDER, status, error, message)


def read_body(provider: str) -> bytes | tuple:
    """The raw body, or the 413 answer when it is over MAX_CONTENT_LENGTH."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    try:
        if request.content_length is None and request.environ.get("wsgi.input_terminated"):
            # Chunked: Werkzeug would silently cut the body at the limit; read one byte more to know.
            raw = _read_at_most(request.environ["wsgi.input"], limit + 1)
            if len(raw) > limit:
                raise RequestEntityTooLarge()
            return raw
        return request.get_data(cache=False)
    except RequestEntityTooLarge:
        return refuse(provider, 413, "too_large", f"body exceeds {limit} bytes")


def _read_at_most(stream: Any, size: int) -> bytes:
    chunks, left = [], size
    while left > 0:
        chunk = stream.read(min(left, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def store(provider: str, raw: bytes, stored_counter: Any):  # type: ignore[no-untyped-def]
    """Commit the raw body to the inbox and answer 200; 503 (the provider retries) if it cannot."""
    try:
        inbox_id = runtime.inbox_writer().write(provider, raw)
    except Exception:
        current_app.logger.exception("could not store a %s webhook", provider)
        return refuse(provider, 503, "storage_unavailable", "could not store the event; retry later")
    stored_counter.inc()
    return _stored(inbox_id)


@bp.post("/17track")
def seventeentrack():  # type: ignore[no-untyped-def]
    """Receive a 17TRACK push: 200 once its raw body is committed to the inbox."""
    raw = read_body(st.PROVIDER)
    if not isinstance(raw, bytes):
        return raw
    key = runtime.settings().seventeentrack_api_key.get_secret_value()
    if not key:
        # Fail closed, and with a status 17TRACK retries: nothing is lost while it is configured.
        return _refuse(503, "not_configured", "SEVENTEENTRACK_API_KEY is not set")
    if not st.signature_is_valid(raw, request.headers.get("sign"), key):
        return _refuse(401, "bad_signature", "missing or invalid 'sign' header")
    try:
        payload = load_json(raw, MalformedJson)
    except MalformedJson as exc:
        return _refuse(400, "malformed_json", str(exc))
    try:
        st.check_envelope(payload)
    except st.PushError as exc:
        return _refuse(400, "not_a_17track_event", str(exc))
    return store(st.PROVIDER, raw, _STORED)


def _stored(inbox_id: int) -> Response:
    # The same JSON as jsonify(status="stored", inbox_id=...), without an encoder per request.
    body = b'{"inbox_id":%d,"status":"stored"}\n' % inbox_id
    return Response(body, status=200, mimetype="application/json")
