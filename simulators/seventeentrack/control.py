"""The simulator's own control API under /_sim/ (no auth): what tests and `manage.py simulate`
use to look inside the account and to drive it.

- GET  /_sim/calls[?endpoint=stoptrack]   every API call, with arrival time and HTTP status
- GET  /_sim/parcels                      every registration and where it is on its path
- POST /_sim/parcels                      {"number","carrier","tracking"?} (or a list): seed parcels
- POST /_sim/advance                      {"steps"?: 1, "numbers"?: [...]}: advance now, push changes
- GET  /_sim/pushes[?number=…]            every push attempt and the HTTP status it got
- GET/POST /_sim/webhook                  {"url": "…" | null}: the account's webhook URL
- POST /_sim/fail_next                    {"statuses": [500, 429, "timeout", "reset"]}: next calls' faults
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request

from simulators.seventeentrack import progression, scripts
from simulators.seventeentrack.delivery import Pusher
from simulators.seventeentrack.state import TRACKING, Parcel, SimState
from simulators.shared.common import add_common_control_routes, add_log_route


def parcel_summary(parcel: Parcel) -> dict[str, Any]:
    step = parcel.latest_step or scripts.NOT_FOUND
    return {
        "number": parcel.number,
        "carrier": parcel.carrier,
        "tracking": parcel.tracking,
        "script": parcel.script,
        "step": len(parcel.event_times),
        "steps": len(parcel.steps),
        "status": step.status,
        "sub_status": step.sub_status,
        "retracked": parcel.retracked,
        "carrier_changes": parcel.carrier_changes,
        "tag": parcel.tag,
        "lang": parcel.lang,
        "stop_reason": parcel.stop_reason,
        "push_status": parcel.push_status,
    }


def _body() -> Any:
    return request.get_json(force=True, silent=True) or {}


def add_control_routes(app: Flask, state: SimState, pusher: Pusher) -> None:
    add_common_control_routes(app, state, _body)
    _add_inspection_routes(app, state)
    _add_driving_routes(app, state, pusher)


def _add_inspection_routes(app: Flask, state: SimState) -> None:
    @app.get("/_sim/parcels")
    def parcels():  # type: ignore[no-untyped-def]
        with state.lock:
            return jsonify(parcels=[parcel_summary(p) for p in state.parcels.values()])

    add_log_route(app, state, "pushes", "number", lambda: state.pushes)


def _add_driving_routes(app: Flask, state: SimState, pusher: Pusher) -> None:
    @app.post("/_sim/parcels")
    def add_parcels():  # type: ignore[no-untyped-def]
        body = _body()
        items = body if isinstance(body, list) else [body]
        with state.lock:
            for item in items:
                state.add_parcel(str(item["number"]), int(item["carrier"]), item.get("tracking", TRACKING))
        return jsonify(added=len(items))

    @app.post("/_sim/advance")
    def advance():  # type: ignore[no-untyped-def]
        body = _body()
        numbers = set(body["numbers"]) if body.get("numbers") else None
        produced = progression.advance(state, pusher, int(body.get("steps", 1)), numbers)
        return jsonify(pushes=produced)

    @app.route("/_sim/webhook", methods=["GET", "POST"])
    def webhook():  # type: ignore[no-untyped-def]
        with state.lock:
            if request.method == "POST":
                state.webhook_url = _body().get("url")
            return jsonify(url=state.webhook_url)
