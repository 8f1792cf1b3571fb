"""What the simulator tests share: a tiny HTTP receiver for pushes and callbacks, and polling."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Self

from flask import Flask
from werkzeug.serving import make_server

from tests.helpers import wait_for


def wait_until(condition: Callable[[], Any], timeout: float = 5.0) -> Any:
    """The condition's first truthy value, polled every 20 ms; AssertionError after `timeout`."""
    return wait_for(condition, timeout, interval=0.02)


class HttpReceiver:
    """An HTTP endpoint on a real port, `url`, whose POSTs `_hook` answers (from flask's `request`);
    use it as a context manager."""

    def __init__(self, path: str = "/hook") -> None:
        app = Flask("receiver")
        app.add_url_rule(path, "hook", self._hook, methods=["POST"])
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}{path}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def _hook(self) -> tuple[str, int]:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
