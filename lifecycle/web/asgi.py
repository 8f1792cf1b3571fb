"""`manage.py serve`'s application: the webhook intake on an event loop, in front of the Flask app.

gunicorn runs uvicorn's workers (uvloop, and httptools parsing HTTP in C) rather than its own
threads. `POST /webhooks/<provider>` for a provider an adapter serves is answered here, with the
same checks as the WSGI intake (webhooks.judge) and a group commit led from the loop
(lifecycle/inbox/async_writer.py): 200 only once the body is committed (invariant 1). Everything
else, a webhook for a provider no adapter serves included, goes to the same Flask app through
a2wsgi's thread pool, unchanged. Why: on 2 cores the threaded intake (gthread workers, the same
checks and group commit) spent most of its CPU in gunicorn's Python HTTP parsing and in waking
request threads, and acknowledged 0.65-0.73 of a bare Flask endpoint's rate; this one about twice
that endpoint's rate (bench/webhook_ack.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from a2wsgi import WSGIMiddleware
from flask import Flask
from werkzeug.datastructures import EnvironHeaders

from lifecycle.inbox.async_writer import AsyncInboxWriter
from lifecycle.observability.logs import bound_environ
from lifecycle.providers import registry
from lifecycle.providers.base import Provider
from lifecycle.web import webhooks

log = logging.getLogger(__name__)

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
_JSON = (b"content-type", b"application/json")


class ClientGone(Exception):
    """The client disconnected before its body was read: nothing to store, nobody to answer."""


class WebhookIntakeAsgi:
    """ASGI app: webhook POSTs answered on the loop, every other request handed to Flask."""

    def __init__(self, app: Flask, flask_threads: int) -> None:
        self.settings = app.config["SETTINGS"]
        self.limit: int = app.config["MAX_CONTENT_LENGTH"]
        self.downstream = WSGIMiddleware(app, workers=flask_threads)  # type: ignore[arg-type]
        threaded = app.extensions["inbox_writer"]
        self.writer = AsyncInboxWriter(threaded.session_factory, on_committed=threaded.on_committed)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await self.lifespan(receive, send)
        path: str = scope.get("path", "")
        adapter = registry.find(path[len(webhooks.PREFIX) :]) if path.startswith(webhooks.PREFIX) else None
        if scope["type"] != "http" or adapter is None or scope["method"] != "POST":
            return await self.downstream(scope, receive, send)
        environ = header_environ(scope["headers"])
        with bound_environ(environ):  # log lines carry the request's id, as on the WSGI path
            try:
                status, body = await self.receive(adapter, EnvironHeaders(environ), receive)
            except ClientGone:
                return
            except Exception:  # a defect, answered as Flask would answer it, and logged
                log.exception("webhook handler failed")
                status, body = webhooks.INTERNAL_ERROR
        await send({"type": "http.response.start", "status": status,
                    "headers": [_JSON, (b"content-length", b"%d" % len(body))]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    async def receive(self, adapter: Provider, headers: EnvironHeaders, receive: Receive) -> webhooks.Answer:
        try:
            raw = await read_body(receive, headers.get("content-length"), self.limit)
        except webhooks.TooLarge:
            return webhooks.too_large(adapter.name, self.limit)
        refusal = webhooks.judge(adapter, raw, headers, self.settings)
        if refusal is not None:
            return refusal
        try:
            inbox_id = await self.writer.write(adapter.name, raw)
        except Exception as exc:
            return webhooks.unavailable(adapter.name, exc)
        return webhooks.stored(adapter.name, inbox_id)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # The server has finished its requests: a batch still in flight commits first.
                await self.writer.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def header_environ(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The request's headers as a WSGI server puts them in the environ (`HTTP_SIGN`,
    `CONTENT_LENGTH`, repeated ones joined by commas), so that the adapters read them through the
    same werkzeug view as on the WSGI path, whatever bytes they hold."""
    environ: dict[str, Any] = {}
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        key = name if name in ("CONTENT_LENGTH", "CONTENT_TYPE") else f"HTTP_{name}"
        value = raw_value.decode("latin-1")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


async def read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The whole body; TooLarge as soon as it is known to be over `limit`, announced or not."""
    # The server has checked the header's syntax; the read below enforces the limit whatever it says.
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise webhooks.TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise webhooks.TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
