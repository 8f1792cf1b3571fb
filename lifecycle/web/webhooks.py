"""Provider webhooks: verify, store the raw body durably, answer. Nothing else happens here."""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from lifecycle import runtime
from lifecycle.metrics import WEBHOOKS
from lifecycle.providers import registry
from lifecycle.providers.base import BodyError
from lifecycle.providers.validation import load_json


class MalformedJson(ValueError):
    """The body is not JSON this service can read (syntax, encoding, huge integers, nesting)."""


bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
log = logging.getLogger(__name__)


def refuse(provider: str, status: int, error: str, message: str):  # type: ignore[no-untyped-def]
    WEBHOOKS.labels(provider=provider, result=error).inc()
    # The reason only: neither the body nor the message (which may quote it) is logged.
    log.info("webhook refused", extra={"provider": provider, "reason": error, "status": status})
    return jsonify(error=error, message=message), status


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


def store(provider: str, raw: bytes):  # type: ignore[no-untyped-def]
    """Commit the raw body to the inbox and answer 200; 503 (the provider retries) if it cannot."""
    try:
        inbox_id = runtime.inbox_writer().write(provider, raw)
    except Exception:
        current_app.logger.exception("could not store a %s webhook", provider)
        return refuse(provider, 503, "storage_unavailable", "could not store the event; retry later")
    _stored_counter(provider).inc()
    return _stored(inbox_id)


@cache
def _stored_counter(provider: str) -> Any:
    # Every accepted webhook goes through here: the counter child is bound once per provider.
    return WEBHOOKS.labels(provider=provider, result="stored")


@bp.post("/<provider>")
def receive(provider: str):  # type: ignore[no-untyped-def]
    """Receive a provider's webhook: 200 once its raw body is committed to the inbox.

    The adapter says whether the request is authentic and whether the body has its provider's
    shape; nothing else is done here (invariant 1). The public URLs are /webhooks/17track and
    /webhooks/cargoai, one per adapter in lifecycle/providers/registry.py.
    """
    adapter = registry.find(provider)
    if adapter is None:
        return jsonify(error="unknown_provider", message=f"no webhook for {provider[:40]!r}"), 404
    raw = read_body(adapter.name)
    if not isinstance(raw, bytes):
        return raw
    refusal = adapter.verify(raw, request.headers, runtime.settings())
    if refusal is not None:
        return refuse(adapter.name, refusal.status, refusal.error, refusal.message)
    try:
        payload = load_json(raw, MalformedJson)
    except MalformedJson as exc:
        return refuse(adapter.name, 400, "malformed_json", str(exc))
    try:
        adapter.check_envelope(payload)
    except BodyError as exc:
        return refuse(adapter.name, 400, adapter.not_an_event, str(exc))
    return store(adapter.name, raw)


def _stored(inbox_id: int) -> Response:
    # The same JSON as jsonify(status="stored", inbox_id=...), without an encoder per request.
    body = b'{"inbox_id":%d,"status":"stored"}\n' % inbox_id
    return Response(body, status=200, mimetype="application/json")
