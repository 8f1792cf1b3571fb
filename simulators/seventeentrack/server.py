"""A 17TRACK API simulator over real HTTP (DESIGN.md, "Provider simulators").

Point the service at it with SEVENTEENTRACK_API_URL. It follows reference/17track.md: `17token`
auth (401, -18010002), the accepted/rejected envelope, 40 items per call (-18010014), 3 requests/s
per key (HTTP 429), every v2.2 endpoint the service may call with its per-item error codes and
quota rules, parcels that progress along scripted paths, and signed pushes to a webhook URL with
configurable duplicates, delays and reordering. Every call and every push attempt is logged.

Modules: `state` (account, parcels, quota, rate window), `registry` and `queries` (endpoints),
`trackinfo` (payload shapes), `scripts` and `progression` (paths, steps), `delivery` (pushes),
`control` (the /_sim/ API), `carriers`, `codes`, `pushes` (push bodies, also for tests and benches);
`simulators.shared` holds what it shares with the CargoAi simulator; `python -m simulators` runs
it alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import requests
from flask import Flask, g, jsonify, request

from simulators.seventeentrack import codes, delivery, progression, pushes, queries, registry
from simulators.seventeentrack.codes import RequestError
from simulators.seventeentrack.control import add_control_routes
from simulators.seventeentrack.delivery import Pusher
from simulators.seventeentrack.state import TRACKING, Parcel, SimOptions, SimState, utcnow
from simulators.shared import faults
from simulators.shared.common import BackgroundServer

__all__ = ["Parcel", "SimOptions", "SimState", "SimulatorServer", "create_simulator", "push"]

MAX_ITEMS = 40
# The service calls `<url>/<endpoint>`; the real base URL ends in /track/v2.2: serve both.
API_PREFIXES = ("", "/track/v2.2")
ITEM_ENDPOINTS: dict[str, registry.Handler] = {
    "register": registry.register,
    "stoptrack": registry.stoptrack,
    "retrack": registry.retrack,
    "deletetrack": registry.deletetrack,
    "changecarrier": registry.changecarrier,
    "changeinfo": registry.changeinfo,
    "gettrackinfo": queries.gettrackinfo,
}


def _item_list() -> list[dict[str, Any]]:
    """The JSON array every item endpoint takes, or the request-level error refusing it."""
    body = request.get_json(force=True, silent=True)
    if isinstance(body, list) and len(body) > MAX_ITEMS:
        raise RequestError(codes.TOO_MANY_NUMBERS)
    if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
        raise RequestError(codes.INVALID_DATA)
    return body


def _gate(state: SimState):  # type: ignore[no-untyped-def]
    """Log the call, then injected faults, auth and the rate limit, in that order."""
    body = request.get_json(force=True, silent=True)
    g.call = {
        "at": time.time(),
        "endpoint": request.path.rsplit("/", 1)[-1],
        "items": len(body) if isinstance(body, list) else 0,
        "numbers": [item.get("number") for item in body if isinstance(item, dict)]
        if isinstance(body, list)
        else [],
        "status": None,
    }
    with state.lock:
        state.calls.append(g.call)
        fault = state.fail_next.pop(0) if state.fail_next else None
    if fault is not None:
        g.call["fault"] = fault
        if isinstance(fault, int):
            return jsonify(error="injected"), fault
        if faults.hold_or_drop(fault, request, state.options.timeout_fault_seconds):
            return "", 500  # written to nowhere: the connection is gone
    with state.lock:
        if request.headers.get("17token") != state.api_key:
            return jsonify(codes.request_error(codes.INVALID_KEY)), 401
        if not state.admit(time.time()):  # a bad key or an injected fault does not use up a slot
            return jsonify(code=429, message="Too Many Requests"), 429
    return None


def _api_views(state: SimState) -> dict[str, Callable[[], Any]]:
    def batch(handler: registry.Handler) -> Callable[[], Any]:
        def view():  # type: ignore[no-untyped-def]
            items, now = _item_list(), utcnow()
            with state.lock:
                accepted, rejected = registry.each_item(state, items, handler, now)
            return jsonify(code=0, data={"accepted": accepted, "rejected": rejected})

        return view

    def gettracklist():  # type: ignore[no-untyped-def]
        body = request.get_json(force=True, silent=True) or {}
        if not isinstance(body, dict):  # the one endpoint whose body is an object
            raise RequestError(codes.INVALID_DATA)
        with state.lock:
            return jsonify(queries.gettracklist(state, body, utcnow()))

    def getquota():  # type: ignore[no-untyped-def]
        with state.lock:
            return jsonify(queries.getquota(state, utcnow()))

    def push_now():  # type: ignore[no-untyped-def]
        return jsonify(delivery.replay(state, _item_list(), utcnow()))

    views = {name: batch(handler) for name, handler in ITEM_ENDPOINTS.items()}
    return {**views, "gettracklist": gettracklist, "getquota": getquota, "push": push_now}


def create_simulator(state: SimState, pusher: Pusher | None = None) -> Flask:
    app = Flask("sim17track")
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep 17TRACK's field order
    pusher = pusher or Pusher(state)

    @app.before_request
    def gate():  # type: ignore[no-untyped-def]
        return None if request.path.startswith("/_sim") else _gate(state)

    @app.after_request
    def log_status(response):  # type: ignore[no-untyped-def]
        if "call" in g:
            g.call["status"] = response.status_code
        return response

    @app.errorhandler(RequestError)
    def refused(error: RequestError):  # type: ignore[no-untyped-def]
        return jsonify(error.envelope), 200

    views = _api_views(state)
    for prefix in API_PREFIXES:
        for name, view in views.items():
            app.add_url_rule(f"{prefix}/{name}", f"{prefix}/{name}", view, methods=["POST"])
    add_control_routes(app, state, pusher)
    return app


class SimulatorServer(BackgroundServer):
    """The simulator on a real port, in background threads; use it as a context manager.

    Options are the fields of `SimOptions` (rate_per_second, quota_total, daily_limit,
    webhook_url, step_seconds, duplicate_rate, reorder_rate, delay_seconds, ...).
    """

    pusher: Pusher

    def __init__(self, api_key: str, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        self.state = SimState(api_key, SimOptions(**options))
        pusher = Pusher(self.state)
        tick = partial(progression.tick, self.state, pusher)  # every parcel, while a webhook is set
        app = create_simulator(self.state, pusher)
        super().__init__(app, pusher, tick, self.state.options.step_seconds, host, port, "sim17track")

    def add_parcel(self, number: str, carrier: int, tracking: str = TRACKING) -> Parcel:
        """A number registered elsewhere (no quota, no format check): tests seed the account so."""
        with self.state.lock:
            return self.state.add_parcel(number, carrier, tracking)

    def fail_next(self, *injected: faults.Fault) -> None:
        """The next API calls get these faults, one each (HTTP statuses, "timeout", "reset")."""
        with self.state.lock:
            self.state.fail_next.extend(faults.parse(fault) for fault in injected)

    def calls(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        with self.state.lock:
            return [c for c in self.state.calls if endpoint is None or c["endpoint"] == endpoint]

    def pushes(self, number: str | None = None) -> list[dict[str, Any]]:
        with self.state.lock:
            return [p for p in self.state.pushes if number is None or p["number"] == number]

    def advance(self, steps: int = 1, numbers: set[str] | None = None) -> int:
        """Advance every tracked parcel (or those numbers) `steps` times now; returns pushes made."""
        return progression.advance(self.state, self.pusher, steps, numbers)

    def set_webhook(self, url: str | None) -> None:
        with self.state.lock:
            self.state.webhook_url = url

    def wait_for_pushes(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is queued (retries included) or in flight; False on timeout."""
        return self.pusher.wait_idle(timeout)


def push(webhook_url: str, api_key: str, payload: dict[str, Any], timeout: float = 10) -> requests.Response:
    """Deliver one signed push the way 17TRACK does."""
    return delivery.post_signed(webhook_url, api_key, pushes.encode(payload), timeout)
