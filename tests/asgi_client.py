"""A small synchronous client for the ASGI app `manage.py serve` runs (lifecycle/web/asgi.py).

It speaks ASGI to the app directly, on one event loop running in a thread of its own for the
client's life (as a uvicorn worker keeps one; and the calling thread may have a loop of its own,
Playwright's sync API for one): the body can arrive in chunks, the client can go away mid-body, and
several requests can be in flight together (`post_many`). Answers look like Flask's test responses.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


class Answer:
    def __init__(self, status_code: int, headers: dict[str, str], data: bytes) -> None:
        self.status_code, self.headers, self.data = status_code, headers, data

    @property
    def json(self) -> Any:
        return json.loads(self.data)


class AsgiClient:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="asgi-client", daemon=True)
        self._thread.start()
        self.run(self._lifespan_start())

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        """Run `coroutine` on the client's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def post(self, path: str, data: bytes = b"", headers: dict[str, str] | None = None, **how: Any) -> Any:
        """An Answer, or None if the app sent none; `how`: request()'s chunks, declare_length, ..."""
        return self.run(self.request("POST", path, data, headers, **how))

    def get(self, path: str, headers: dict[str, str] | None = None) -> Any:
        return self.run(self.request("GET", path, b"", headers))

    def post_many(self, path: str, requests: Iterable[tuple[bytes, dict[str, str]]]) -> list[Answer | None]:
        """All the requests in flight together on the loop, as concurrent connections would be."""

        async def together() -> list[Answer | None]:
            return await asyncio.gather(*(self.request("POST", path, body, h) for body, h in requests))

        return self.run(together())

    def close(self) -> None:
        """The server's shutdown: lifespan.shutdown once no request is in flight."""
        self.run(self._lifespan_stop())
        self.stop_loop()

    def stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        self.loop.close()

    async def request(
        self,
        method: str,
        path: str,
        body: bytes,
        headers: dict[str, str] | None,
        chunks: int = 1,
        declare_length: bool = True,
        disconnect_after: int | None = None,
    ) -> Answer | None:
        """One request; the body in `chunks` pieces; `disconnect_after` pieces, then the client is gone.
        None when the app sent no answer."""
        sent_headers = {k.lower(): v for k, v in (headers or {}).items()}
        if declare_length:
            sent_headers.setdefault("content-length", str(len(body)))
        else:
            sent_headers["transfer-encoding"] = "chunked"
        size = -(-len(body) // chunks) if body else 0
        pieces = [body[i * size : (i + 1) * size] for i in range(chunks)] if body else [b""]
        if disconnect_after is not None:
            pieces = pieces[:disconnect_after]
        cut = disconnect_after is not None
        incoming: list[dict[str, Any]] = [
            {"type": "http.request", "body": piece, "more_body": cut or i < len(pieces) - 1}
            for i, piece in enumerate(pieces)
        ]
        incoming.append({"type": "http.disconnect"})
        outgoing: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if len(incoming) > 1:
                return incoming.pop(0)
            await asyncio.sleep(0)
            return incoming[0]  # the disconnect, for as long as the app asks

        async def send(message: dict[str, Any]) -> None:
            outgoing.append(message)

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in sent_headers.items()],
        }  # fmt: skip
        await self.app(scope, receive, send)
        return _answer(outgoing)

    async def _lifespan_start(self) -> None:
        self._lifespan_in: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._lifespan_out: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
        self._lifespan = asyncio.ensure_future(self.app(scope, self._lifespan_in.get, self._lifespan_out.put))
        await self._lifespan_in.put({"type": "lifespan.startup"})
        assert (await self._lifespan_out.get())["type"] == "lifespan.startup.complete"

    async def _lifespan_stop(self) -> None:
        await self._lifespan_in.put({"type": "lifespan.shutdown"})
        assert (await self._lifespan_out.get())["type"] == "lifespan.shutdown.complete"
        await self._lifespan


def _answer(outgoing: list[dict[str, Any]]) -> Answer | None:
    if not outgoing:
        return None
    start = outgoing[0]
    assert start["type"] == "http.response.start", start
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in start.get("headers", [])}
    body = b"".join(m.get("body", b"") for m in outgoing[1:] if m["type"] == "http.response.body")
    return Answer(start["status"], headers, body)


@contextmanager
def intake_client(app: Any, intake: str) -> Iterator[Any]:
    """A client for `app` through one of its two front doors: Flask's WSGI stack ("wsgi", what
    `lifecycle.wsgi:app` serves) or the ASGI app `manage.py serve` runs ("asgi")."""
    if intake == "wsgi":
        yield app.test_client()
        return
    from lifecycle.web.asgi import WebhookIntakeAsgi

    client = AsgiClient(WebhookIntakeAsgi(app, flask_threads=4))
    try:
        yield client
    finally:
        client.close()
