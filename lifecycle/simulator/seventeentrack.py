"""A 17TRACK API simulator over real HTTP (DESIGN.md, "Provider simulators").

Faithful to reference/17track.md where this service depends on it: `17token` auth, the envelope,
40 numbers per call (-18010014), 3 requests/s per key (HTTP 429), register/stoptrack/retrack/
deletetrack/getquota with their per-item error codes, and signed pushes to a webhook URL.
Every call is logged with its arrival time so tests can check batching and rate limits.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import requests
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from lifecycle.providers import pushes
from lifecycle.providers import seventeentrack as st


@dataclass
class Parcel:
    number: str
    carrier: int
    tracking: str = "Tracking"
    retracked: bool = False


@dataclass
class SimState:
    api_key: str
    rate_per_second: int = 3
    quota_total: int = 100
    parcels: dict[str, Parcel] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    arrivals: deque[float] = field(default_factory=deque)
    # Injected faults: the next N calls answer with this HTTP status.
    fail_next: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def over_rate(self, now: float) -> bool:
        while self.arrivals and self.arrivals[0] <= now - 1.0:
            self.arrivals.popleft()
        if len(self.arrivals) >= self.rate_per_second:
            return True
        self.arrivals.append(now)
        return False


def _rejected(number: str, code: int, message: str) -> dict[str, Any]:
    return {"number": number, "error": {"code": code, "message": message}}


def _error(code: int, message: str, status: int = 200):  # type: ignore[no-untyped-def]
    return jsonify(code=code, data={"errors": [{"code": code, "message": message}]}), status


def create_simulator(state: SimState) -> Flask:
    app = Flask("sim17track")

    @app.before_request
    def _gate():  # type: ignore[no-untyped-def]
        if request.path.startswith("/_sim"):
            return None
        now = time.time()
        items = request.get_json(silent=True)
        with state.lock:
            state.calls.append({"at": now, "endpoint": request.path.rsplit("/", 1)[-1],
                                "items": len(items) if isinstance(items, list) else 0})  # fmt: skip
            if state.fail_next:
                return jsonify(error="injected"), state.fail_next.pop(0)
            if state.over_rate(now):
                return jsonify(code=429, message="Too Many Requests"), 429
        if request.headers.get("17token") != state.api_key:
            return _error(-18010002, "Invalid security key.", 401)
        if isinstance(items, list) and len(items) > 40:
            return _error(-18010014, "Tracking numbers exceed the 40 limit.")
        if not isinstance(items, list):
            return _error(-18010013, "Invalid submitted data.")
        return None

    @app.post("/register")
    def register():  # type: ignore[no-untyped-def]
        accepted, rejected = [], []
        with state.lock:
            for item in request.get_json():
                number, carrier = str(item.get("number", "")), int(item.get("carrier") or 3011)
                if not 5 <= len(number) <= 50:
                    rejected.append(_rejected(number, -18010012, f"The format of '{number}' is invalid."))
                elif number in state.parcels:
                    rejected.append(_rejected(number, st.ERR_ALREADY_REGISTERED, "already registered"))
                else:
                    state.parcels[number] = Parcel(number, carrier)
                    accepted.append(
                        {"origin": 1, "number": number, "carrier": carrier, "tag": item.get("tag")}
                    )
        return jsonify(code=0, data={"accepted": accepted, "rejected": rejected})

    @app.post("/stoptrack")
    def stoptrack():  # type: ignore[no-untyped-def]
        accepted, rejected = [], []
        with state.lock:
            for item in request.get_json():
                number = str(item.get("number", ""))
                parcel = state.parcels.get(number)
                if parcel is None:
                    message = f"The tracking number '{number}' does not register, please register first."
                    rejected.append(_rejected(number, st.ERR_NOT_REGISTERED, message))
                elif parcel.tracking == "Stopped":
                    rejected.append(
                        _rejected(number, st.ERR_ALREADY_STOPPED, "only numbers being tracked can be stopped")
                    )
                else:
                    parcel.tracking = "Stopped"
                    accepted.append({"number": number, "carrier": parcel.carrier})
        return jsonify(code=0, data={"accepted": accepted, "rejected": rejected})

    @app.get("/_sim/calls")
    def calls():  # type: ignore[no-untyped-def]
        with state.lock:
            return jsonify(calls=list(state.calls))

    return app


class SimulatorServer:
    """The simulator on a real port, in a background thread."""

    def __init__(self, api_key: str, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        self.state = SimState(api_key=api_key, **options)
        self._server = make_server(host, port, create_simulator(self.state), threaded=True)
        self.url = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> SimulatorServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()

    def add_parcel(self, number: str, carrier: int, tracking: str = "Tracking") -> None:
        with self.state.lock:
            self.state.parcels[number] = Parcel(number, carrier, tracking)

    def calls(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        with self.state.lock:
            return [c for c in self.state.calls if endpoint is None or c["endpoint"] == endpoint]


def push(webhook_url: str, api_key: str, payload: dict[str, Any], timeout: float = 10) -> requests.Response:
    """Deliver one signed push the way 17TRACK does."""
    body = pushes.encode(payload)
    headers = {"sign": st.sign(body, api_key), "Content-Type": "application/json"}
    return requests.post(webhook_url, data=body, headers=headers, timeout=timeout)
