"""What the 17TRACK and CargoAi simulators share: the threaded server wrapper, the background
ticker, the delayed/duplicating delivery queue and the control routes both serve under /_sim/.

Each simulator subclasses these with its own state, payloads and rules (`simulators.seventeentrack`
and `simulators.cargoai`: their `server`, `delivery` and `control` modules).
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Protocol, Self, TypeVar

import requests
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from simulators.shared import faults

DUPLICATE_GAP_SECONDS = 0.05  # a duplicate arrives this long after the original (plus its delay)


class Worker(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


class QueueOptions(Protocol):
    seed: int
    delay_seconds: float | tuple[float, float]
    duplicate_rate: float


class ControlState(Protocol):
    lock: threading.Lock
    calls: list[dict[str, Any]]
    fail_next: list[int | str]


class BackgroundServer:
    """A simulator's app on a real port, its pusher and, when `step_seconds` is set, a ticker calling
    `tick` that often, in background threads; use it as a context manager."""

    def __init__(
        self,
        app: Flask,
        pusher: Worker,
        tick: Callable[[], object],
        step_seconds: float | None,
        host: str,
        port: int,
        name: str,
    ) -> None:
        self.app = app
        self.pusher = pusher
        self._server = make_server(host, port, app, threaded=True)
        self.url = f"http://{host}:{self._server.server_port}"
        # A short poll interval: shutdown() waits for it, and tests start many simulators.
        self._http = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{name}-http",
            daemon=True,
        )
        self._ticker = Ticker(step_seconds, tick, f"{name}-ticker") if step_seconds else None
        self._running = False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._running = True
        self._http.start()
        self.pusher.start()
        if self._ticker:
            self._ticker.start()

    def stop(self) -> None:
        """Stop progressing first, then delivering, then serving; idempotent."""
        if not self._running:
            return
        self._running = False
        if self._ticker:
            self._ticker.stop()
        self.pusher.stop()
        self._server.shutdown()
        self._server.server_close()
        self._http.join(timeout=10)


class Ticker:
    """Calls `tick` every `interval` seconds of wall time in a background thread until stopped."""

    def __init__(self, interval: float, tick: Callable[[], object], name: str) -> None:
        self._interval, self._tick = interval, tick
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self._tick()


@dataclass(order=True)
class Scheduled:
    """A queued delivery, in due-time order (then submission order); subclasses add the payload."""

    due: float
    seq: int
    duplicate: bool = field(default=False, compare=False, kw_only=True)


D = TypeVar("D", bound=Scheduled)


def try_send(send: Callable[[], requests.Response]) -> tuple[int | None, str | None]:
    """(HTTP status or None, error text or None) of one delivery attempt."""
    try:
        return send().status_code, None
    except requests.RequestException as exc:
        return None, f"{exc.__class__.__name__}: {exc}"


class DeliveryQueue(Generic[D]):
    """One background thread delivering queued items in due-time order, each after a random delay
    (`delay_seconds`) and sometimes twice (`duplicate_rate`), drawn from an RNG seeded by `seed`.

    Subclasses plan what a submitted item queues (`_plan`, through `_enqueue`), make one delivery
    (`_deliver`, called with no lock held) and say how long one HTTP attempt may take.
    """

    def __init__(self, options: QueueOptions, thread_name: str) -> None:
        self._options = options
        self._rng = random.Random(options.seed)
        self._queue: list[D] = []
        self._in_flight = 0
        self._stopping = False
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._session = requests.Session()  # used by the delivery thread only
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    @property
    def _request_timeout(self) -> float:
        raise NotImplementedError

    def _plan(self, item: Any) -> None:
        raise NotImplementedError

    def _deliver(self, delivery: D) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=self._request_timeout + 5)
        self._session.close()

    def submit(self, items: Iterable[Any]) -> None:
        with self._cond:
            for item in items:
                self._plan(item)
            self._cond.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is queued or in flight; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def _delay(self) -> float:
        delay = self._options.delay_seconds
        return self._rng.uniform(*delay) if isinstance(delay, tuple | list) else float(delay)

    def _enqueue(self, delivery: D) -> None:
        """Queue it, and with `duplicate_rate` a duplicate a little (and another delay) after it."""
        heapq.heappush(self._queue, delivery)
        if self._rng.random() < self._options.duplicate_rate:
            again = delivery.due + DUPLICATE_GAP_SECONDS + self._delay()
            heapq.heappush(self._queue, replace(delivery, due=again, seq=next(self._seq), duplicate=True))

    def _requeue(self, delivery: D) -> None:
        """Queue it again from the delivery thread (a retry)."""
        with self._cond:
            heapq.heappush(self._queue, delivery)
            self._cond.notify_all()

    def _next_due(self) -> D | None:
        """Block until a delivery is due (None: stopping); the caller then owns it."""
        with self._cond:
            while not self._stopping:
                wait = self._queue[0].due - time.time() if self._queue else None
                if wait is not None and wait <= 0:
                    self._in_flight += 1
                    return heapq.heappop(self._queue)
                self._cond.wait(wait)
            return None

    def _run(self) -> None:
        while (delivery := self._next_due()) is not None:
            try:
                self._deliver(delivery)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()


def add_log_route(app: Flask, state: ControlState, name: str, key: str, log: Callable[[], list[Any]]) -> None:
    """GET /_sim/<name>[?<key>=…]: {name: the log's records (those whose `key` matches)}."""

    def view():  # type: ignore[no-untyped-def]
        wanted = request.args.get(key)
        with state.lock:
            return jsonify({name: [r for r in log() if wanted in (None, r[key])]})

    app.add_url_rule(f"/_sim/{name}", f"sim_{name}", view, methods=["GET"])


def add_common_control_routes(app: Flask, state: ControlState, read_body: Callable[[], Any]) -> None:
    """GET /_sim/calls[?endpoint=…] (the call log) and POST /_sim/fail_next {"statuses": [...]} (the
    next API calls get these faults: HTTP statuses, "timeout", "reset"; see faults.py); `read_body`
    is the simulator's body reader."""
    add_log_route(app, state, "calls", "endpoint", lambda: state.calls)

    @app.post("/_sim/fail_next")
    def sim_fail_next():  # type: ignore[no-untyped-def]
        try:
            queued = [faults.parse(value) for value in read_body().get("statuses", [])]
        except ValueError as exc:
            return jsonify(error=str(exc)), 400
        with state.lock:
            state.fail_next.extend(queued)
            return jsonify(fail_next=list(state.fail_next))
