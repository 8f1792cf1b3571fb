"""The gunicorn worker class `manage.py serve` runs: uvicorn's, bounded the way gunicorn's own are.

uvicorn's worker takes every connection it is offered; gunicorn's threaded workers never held more
than `--worker-connections` (default 1,000). Beyond that many connections (or requests in flight)
a process now answers 503 at once, which providers retry, instead of holding an unbounded number
of bodies (each up to WEBHOOK_MAX_BYTES) in memory under a flood.
"""

from __future__ import annotations

from typing import Any

from uvicorn_worker import UvicornWorker


class ServeWorker(UvicornWorker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.limit_concurrency = self.cfg.worker_connections
