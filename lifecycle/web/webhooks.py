"""Provider webhooks: verify, store the raw body durably, answer. Nothing else happens here.

`POST /webhooks/<provider>` is answered by a lean WSGI handler placed in front of Flask's own
stack (werkzeug's dispatcher pattern): it is the busiest route by far, and Flask's per-request
machinery (request context, routing, response object) cost as much as the work itself. Every other
request, and a POST for a provider no adapter serves, goes on to Flask unchanged. The adapter says
whether the request is authentic and whether the body has its provider's shape; the answer is 200
only once the body is committed to the inbox (invariant 1). This is the front door of
`lifecycle.wsgi:app`; `manage.py serve` answers webhooks on an event loop instead
(lifecycle/web/asgi.py), with the same checks (`judge`) and answers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any

from flask import Flask
from werkzeug.datastructures import EnvironHeaders

from lifecycle.metrics import WEBHOOKS
from lifecycle.observability.logs import bound_environ
from lifecycle.providers import registry
from lifecycle.providers.base import BodyError, Provider
from lifecycle.providers.validation import load_json, readable

PREFIX = "/webhooks/"
log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Answer = tuple[int, bytes]
INTERNAL_ERROR: Answer = (500, b'{"error":"internal_server_error","message":"see the service log"}\n')
_REASONS = {200: "OK", 400: "BAD REQUEST", 401: "UNAUTHORIZED", 413: "REQUEST ENTITY TOO LARGE",
            500: "INTERNAL SERVER ERROR", 503: "SERVICE UNAVAILABLE"}  # fmt: skip


class MalformedJson(ValueError):
    """The body is not JSON this service can read (syntax, encoding, huge integers, nesting)."""


class TooLarge(Exception):
    """The body is over WEBHOOK_MAX_BYTES."""


class WebhookIntake:
    """WSGI middleware: answers webhook POSTs itself, hands everything else to `downstream`."""

    def __init__(self, app: Flask, downstream: WsgiApp) -> None:
        self.downstream = downstream
        self.settings = app.config["SETTINGS"]
        self.limit: int = app.config["MAX_CONTENT_LENGTH"]
        self.writer = app.extensions["inbox_writer"]
        self.logger = app.logger

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        adapter = registry.find(path[len(PREFIX) :]) if path.startswith(PREFIX) else None
        if adapter is None or environ.get("REQUEST_METHOD") != "POST":
            return self.downstream(environ, start_response)
        with bound_environ(environ):
            try:
                status, body = self.receive(adapter, environ)
            except Exception:  # a defect, answered as Flask would answer it, and logged
                self.logger.exception("webhook handler failed")
                status, body = INTERNAL_ERROR

        start_response(
            f"{status} {_REASONS.get(status, '')}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    def receive(self, adapter: Provider, environ: dict[str, Any]) -> Answer:
        try:
            raw = read_body(environ, self.limit)
        except TooLarge:
            return too_large(adapter.name, self.limit)
        refusal = judge(adapter, raw, EnvironHeaders(environ), self.settings)
        if refusal is not None:
            return refusal
        try:
            inbox_id = self.writer.write(adapter.name, raw)
        except Exception as exc:
            return unavailable(adapter.name, exc)
        return stored(adapter.name, inbox_id)


def judge(adapter: Provider, raw: bytes, headers: Mapping[str, str], settings: Any) -> Answer | None:
    """The refusal for a body that is not an authentic event of its provider; None to store it."""
    refusal = adapter.verify(raw, headers, settings)
    if refusal is not None:
        return refuse(adapter.name, refusal.status, refusal.error, refusal.message)
    try:
        adapter.check_envelope(load_json(raw, MalformedJson))
    except MalformedJson as exc:
        return refuse(adapter.name, 400, "malformed_json", str(exc))
    except BodyError as exc:
        return refuse(adapter.name, 400, adapter.not_an_event, str(exc))
    return None


def stored(provider: str, inbox_id: int) -> Answer:
    _stored_counter(provider).inc()
    # The same JSON as jsonify(status="stored", inbox_id=...), without an encoder per request.
    return 200, b'{"inbox_id":%d,"status":"stored"}\n' % inbox_id


def unavailable(provider: str, exc: BaseException) -> Answer:
    """The body could not be committed: 503, and the provider retries. One line per request: the
    writer has logged the failed batch's traceback once (a database outage under load would
    otherwise print one traceback per waiting webhook)."""
    log.warning("could not store a %s webhook (%s): answered 503", provider, readable(exc))
    return refuse(provider, 503, "storage_unavailable", "could not store the event; retry later")


def too_large(provider: str, limit: int) -> Answer:
    return refuse(provider, 413, "too_large", f"body exceeds {limit} bytes")


def refuse(provider: str, status: int, error: str, message: str) -> Answer:
    WEBHOOKS.labels(provider=provider, result=error).inc()
    # The reason only: neither the body nor the message (which may quote it) is logged.
    log.info("webhook refused", extra={"provider": provider, "reason": error, "status": status})
    return status, json.dumps({"error": error, "message": message}).encode() + b"\n"


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The raw body; TooLarge when it is over `limit`, announced or not (chunked)."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        try:
            size = int(length)
        except ValueError:
            size = 0  # as werkzeug: an unreadable length is no body
        if size > limit:
            raise TooLarge
        return _read_at_most(stream, size) if size > 0 else b""
    if environ.get("wsgi.input_terminated"):
        # Chunked: read one byte more than the limit to know whether the body is over it.
        raw = _read_at_most(stream, limit + 1)
        if len(raw) > limit:
            raise TooLarge
        return raw
    return b""  # no length and a stream that may not end: nothing can be read safely


def _read_at_most(stream: Any, size: int) -> bytes:
    chunks, left = [], size
    while left > 0:
        chunk = stream.read(min(left, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


@cache
def _stored_counter(provider: str) -> Any:
    # Every accepted webhook goes through here: the counter child is bound once per provider.
    return WEBHOOKS.labels(provider=provider, result="stored")
